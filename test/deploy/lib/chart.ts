/**
 * Renders the Helm chart with the real `helm` (scripts/deploy/tools.sh installs it) and
 * reads the objects back, for the chart checks and the local metrics check.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { generateValue, type SecretKind } from "../../../scripts/deploy/ensure-secret.js";
import { REPO_ROOT } from "../../helpers/services.js";
import { toolPath } from "./tools.js";

export const CHART_DIR = path.join(REPO_ROOT, "helm", "kafka-llm");
/** The Kubernetes version the chart is rendered for (helm's --kube-version). */
export const KUBE_VERSION = "1.31.0";

/** The CI scenarios: the default values and the ci/*-values.yaml files beside the chart. */
export const VARIANTS: Readonly<Record<string, readonly string[]>> = {
  default: [],
  gpu: ["ci/gpu-values.yaml"],
  cpu: ["ci/cpu-values.yaml"],
  keda: ["ci/keda-values.yaml"],
  "external-kafka": ["ci/external-kafka-values.yaml"],
  production: ["ci/production-values.yaml"],
};

/**
 * Model pools (docs/kubernetes.md, "Model pools"): pools small (CPU) and large (GPU, one
 * adapter). Rendered and checked by chart.test.ts ("model pools") and alerts.test.ts; not
 * one of the VARIANTS every check and the control-plane installs go through.
 */
export const POOLS_VALUES: readonly string[] = ["ci/pools-values.yaml"];

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export interface RenderOptions {
  valuesFiles?: readonly string[];
  /** Strings go through --set; anything else (numbers, booleans, lists, maps) through --set-json. */
  set?: Readonly<Record<string, string | number | boolean | object>>;
  release?: string;
  namespace?: string;
  chartDir?: string;
}

export interface HelmResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function helm(args: readonly string[], cwd = CHART_DIR): HelmResult {
  const r = spawnSync(toolPath("helm"), args, {
    cwd,
    encoding: "utf8",
    timeout: 120_000,
    env: {
      ...process.env,
      HELM_CACHE_HOME: path.join(os.tmpdir(), "helm-cache"),
      HELM_CONFIG_HOME: path.join(os.tmpdir(), "helm-config"),
      HELM_DATA_HOME: path.join(os.tmpdir(), "helm-data"),
    },
  });
  return { status: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "").trim() };
}

function valueArgs(o: RenderOptions): string[] {
  const args: string[] = [];
  for (const f of o.valuesFiles ?? []) args.push("-f", f);
  // --set reads 0.5 as a string; --set-json keeps numbers and booleans typed.
  for (const [k, v] of Object.entries(o.set ?? {})) {
    if (typeof v === "string") args.push("--set", `${k}=${v}`);
    else args.push("--set-json", `${k}=${JSON.stringify(v)}`);
  }
  return args;
}

export function templateArgs(o: RenderOptions = {}): string[] {
  return ["template", o.release ?? "llm", o.chartDir ?? ".", "--namespace", o.namespace ?? "kafka-llm", "--kube-version", KUBE_VERSION, ...valueArgs(o)];
}

/** `helm template`; throws with helm's message when rendering fails. */
export function render(o: RenderOptions = {}): K8sObject[] {
  const r = helm(templateArgs(o), o.chartDir ?? CHART_DIR);
  if (r.status !== 0) throw new Error(`helm template failed:\n${r.stderr}`);
  return parseManifests(r.stdout);
}

/** `helm template` expected to fail: returns helm's error message. */
export function renderError(o: RenderOptions): string {
  const r = helm(templateArgs(o), o.chartDir ?? CHART_DIR);
  if (r.status === 0) throw new Error("helm template succeeded where it should have failed");
  return r.stderr;
}

export function lint(o: RenderOptions = {}): HelmResult {
  return helm(["lint", "--strict", ".", "--namespace", o.namespace ?? "kafka-llm", "--kube-version", KUBE_VERSION, ...valueArgs(o)]);
}

export function parseManifests(text: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as K8sObject | null;
    if (value) objects.push(value);
  }
  return objects;
}

export function find(objects: readonly K8sObject[], kind: string, nameSuffix = ""): K8sObject {
  const found = objects.filter((o) => o.kind === kind && o.metadata.name.endsWith(nameSuffix));
  if (found.length !== 1) throw new Error(`expected one ${kind} named *${nameSuffix}, found ${found.length}`);
  return found[0]!;
}

/**
 * NOTES.txt as `helm install` would print it. Helm renders NOTES only when it installs
 * (which needs a cluster), so a copy of the chart gets NOTES.txt as a named template and
 * a ConfigMap that holds its output; the engine, values and functions are helm's own.
 */
export function renderNotes(o: RenderOptions = {}): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "chart-notes-"));
  try {
    const copy = path.join(dir, "kafka-llm");
    cpSync(CHART_DIR, copy, { recursive: true, dereference: true });
    const notes = readFileSync(path.join(copy, "templates", "NOTES.txt"), "utf8");
    writeFileSync(path.join(copy, "templates", "_zz_notes.tpl"), `{{- define "test.notes" -}}\n${notes}\n{{- end -}}\n`);
    writeFileSync(
      path.join(copy, "templates", "zz-notes.yaml"),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include "test.notes" . | toJson }}\n',
    );
    const objects = render({ ...o, chartDir: copy });
    return String((find(objects, "ConfigMap", "notes").data as Record<string, string>).notes);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The pod specs of Deployments, Jobs and bare Pods (the helm test). */
export function podSpecs(objects: readonly K8sObject[]): Array<{ owner: string; spec: PodSpec }> {
  const out: Array<{ owner: string; spec: PodSpec }> = [];
  for (const o of objects) {
    const owner = `${o.kind}/${o.metadata.name}`;
    if (o.kind === "Deployment" || o.kind === "Job") {
      out.push({ owner, spec: (o.spec as { template: { spec: PodSpec } }).template.spec });
    } else if (o.kind === "Pod") {
      out.push({ owner, spec: o.spec as PodSpec });
    }
  }
  return out;
}

export interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  resources?: { limits?: Record<string, unknown>; requests?: Record<string, unknown> };
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    privileged?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  startupProbe?: { httpGet?: { path: string; port: string | number } };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; runAsGroup?: number };
  terminationGracePeriodSeconds?: number;
  nodeSelector?: Record<string, string>;
  tolerations?: Array<Record<string, string>>;
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  volumes?: Array<Record<string, unknown> & { name: string }>;
}

/** The environment a container gets: its ConfigMaps (envFrom) overlaid by its env. */
export function containerEnv(objects: readonly K8sObject[], c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (!from.configMapRef) throw new Error(`${c.name}: envFrom other than a ConfigMap`);
    Object.assign(env, find(objects, "ConfigMap", from.configMapRef.name).data as Record<string, string>);
  }
  for (const e of c.env ?? []) env[e.name] = e.value ?? `<from ${JSON.stringify(e.valueFrom)}>`;
  return env;
}

/**
 * The container's environment with its Secret volumes "mounted" under `root`: each file a
 * variable names under /etc/kafka-llm must come from a Secret volume item the container
 * mounts (else this throws), and is written there as the kubelet would project it (the
 * chart's own Secret's content; for the Secret the chart's generated-Secret Job makes,
 * values from that Job's own generator, the same for every pod of one render; else a
 * stand-in for a Secret the user brings); the variable then names that file.
 */
export function envWithMountedSecrets(objects: readonly K8sObject[], spec: PodSpec, c: Container, root: string): Record<string, string> {
  const env = containerEnv(objects, c);
  for (const [name, value] of Object.entries(env)) {
    if (!value.startsWith("/etc/kafka-llm/")) continue;
    const mount = (c.volumeMounts ?? []).find((m) => value.startsWith(m.mountPath + "/"));
    if (!mount) throw new Error(`${c.name}: ${name}=${value} but no volume is mounted there`);
    const volume = (spec.volumes ?? []).find((v) => v.name === mount.name) as
      { secret?: { secretName: string; items?: Array<{ key: string; path: string }> } } | undefined;
    const item = volume?.secret?.items?.find((i) => path.posix.join(mount.mountPath, i.path) === value);
    if (!item) throw new Error(`${c.name}: ${name}=${value} is not a file of the Secret volume ${mount.name}`);
    const file = path.join(root, value);
    mkdirSync(path.dirname(file), { recursive: true });
    const own = objects.find((o) => o.kind === "Secret" && o.metadata.name === volume!.secret!.secretName);
    const data = (own?.data as Record<string, string> | undefined)?.[item.key];
    const generated = generatedSecret(objects, volume!.secret!.secretName, item.key);
    writeFileSync(
      file,
      data !== undefined ? Buffer.from(data, "base64") : (generated ?? (item.path.endsWith(".crt") ? STAND_IN_PEM : `${STAND_IN}-${item.key}\n`)),
    );
    env[name] = file;
  }
  return env;
}

const STAND_IN_PEM = "-----BEGIN CERTIFICATE-----\nTUlJQg==\n-----END CERTIFICATE-----\n";
/** What a Secret the user brings holds here: long enough for a token (32 characters). */
export const STAND_IN = "stand-in-0123456789abcdefghijklmnopqrstuvwxyz";

const generatedValues = new WeakMap<readonly K8sObject[], Map<string, string>>();

/**
 * A value of the Secret the chart's generated-Secret Job creates (named by its
 * ENSURE_SECRET_NAME, with the kinds of its ENSURE_SECRET_KEYS), made by the Job's own
 * generator once per render; undefined for any other Secret or key.
 */
export function generatedSecret(objects: readonly K8sObject[], secretName: string, key: string): string | undefined {
  const job = objects.find((o) => o.kind === "Job" && o.metadata.labels?.["app.kubernetes.io/component"] === "generated-secret");
  if (!job) return undefined;
  const env = Object.fromEntries(((job.spec as { template: { spec: PodSpec } }).template.spec.containers[0]!.env ?? []).map((e) => [e.name, e.value ?? ""]));
  if (env.ENSURE_SECRET_NAME !== secretName) return undefined;
  const kind = /(?:^|,)([^=,]+)=(token|api-key)/g;
  const kinds = new Map([...(env.ENSURE_SECRET_KEYS ?? "").matchAll(kind)].map((m) => [m[1]!, m[2] as SecretKind]));
  if (!kinds.has(key)) return undefined;
  const values = generatedValues.get(objects) ?? new Map<string, string>();
  generatedValues.set(objects, values);
  if (!values.has(key)) values.set(key, generateValue(kinds.get(key)!));
  return values.get(key);
}
