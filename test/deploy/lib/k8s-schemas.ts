/**
 * Offline validation of rendered objects against the Kubernetes schemas, in two layers,
 * both from the npm packages kubernetes-models (core kinds), @kubernetes-models/keda and
 * @kubernetes-models/prometheus-operator (generated from the Kubernetes OpenAPI spec and
 * from the KEDA and Prometheus Operator CRDs):
 *
 * 1. `validateObject`: the packages' JSON-schema validators (ajv): types, required
 *    fields, enums, formats. They accept fields the schema does not know, as the API
 *    server would not (kubectl's field validation is Strict by default).
 * 2. `unknownFieldErrors`: the packages' TypeScript interfaces, which list every field:
 *    each object becomes a typed object literal and `tsc` reports every field that is
 *    not in its interface, at any depth (TypeScript's excess property check).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "../../helpers/services.js";
import type { K8sObject } from "./chart.js";

/** apiVersion → the module that has its kinds. Anything else has no schema here: an error. */
const MODULES: Readonly<Record<string, string>> = {
  v1: "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "batch/v1": "kubernetes-models/batch/v1",
  "policy/v1": "kubernetes-models/policy/v1",
  "autoscaling/v2": "kubernetes-models/autoscaling/v2",
  "networking.k8s.io/v1": "kubernetes-models/networking.k8s.io/v1",
  "rbac.authorization.k8s.io/v1": "kubernetes-models/rbac.authorization.k8s.io/v1",
  "admissionregistration.k8s.io/v1": "kubernetes-models/admissionregistration.k8s.io/v1",
  "keda.sh/v1alpha1": "@kubernetes-models/keda/keda.sh/v1alpha1",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

type ModelClass = new (data: unknown) => { validate(): void };

async function modelFor(obj: K8sObject): Promise<ModelClass> {
  const mod = MODULES[obj.apiVersion];
  if (!mod) throw new Error(`no schema for apiVersion ${obj.apiVersion} (${obj.kind} ${obj.metadata?.name})`);
  const exports = (await import(mod)) as Record<string, unknown>;
  const cls = exports[obj.kind];
  if (typeof cls !== "function") throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
  return cls as ModelClass;
}

/** Layer 1: the schema validator; returns the problems (empty when valid). */
export async function validateObject(obj: K8sObject): Promise<string[]> {
  try {
    const Model = await modelFor(obj);
    new Model(obj).validate();
    return [];
  } catch (err) {
    return [`${obj.kind} ${obj.metadata?.name}: ${(err as Error).message}`];
  }
}

/**
 * Layer 2: fields that are not in the kinds' schemas. `sets` names each group of objects
 * (a chart variant); the answer lists "set: Kind name: problem" lines.
 */
export function unknownFieldErrors(sets: Readonly<Record<string, readonly K8sObject[]>>): string[] {
  const dir = path.join(REPO_ROOT, ".cache", "deploy-typecheck");
  mkdirSync(dir, { recursive: true });
  const imports = new Map<string, Set<string>>();
  const lines: string[] = [];
  const where: Array<{ line: number; label: string }> = [];
  let n = 0;
  for (const [setName, objects] of Object.entries(sets)) {
    for (const obj of objects) {
      const mod = MODULES[obj.apiVersion];
      if (!mod) throw new Error(`no schema for apiVersion ${obj.apiVersion} (${obj.kind})`);
      const names = imports.get(mod) ?? new Set<string>();
      names.add(`I${obj.kind}`);
      imports.set(mod, names);
      where.push({ line: lines.length + 1, label: `${setName}: ${obj.kind} ${obj.metadata?.name}` });
      // One line per object: tsc's line number names the object.
      lines.push(`export const o${n++}: I${obj.kind} = ${JSON.stringify(obj)};`);
    }
  }
  const header = [...imports].map(([mod, names]) => `import type { ${[...names].join(", ")} } from "${mod}";`);
  const file = path.join(dir, "rendered.ts");
  writeFileSync(file, [...header, ...lines].join("\n") + "\n");
  writeFileSync(
    path.join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        module: "NodeNext",
        moduleResolution: "NodeNext",
        target: "ES2022",
        skipLibCheck: true,
        types: [],
        noErrorTruncation: true,
      },
      files: ["rendered.ts"],
    }),
  );
  try {
    execFileSync(process.execPath, [path.join(REPO_ROOT, "node_modules/typescript/bin/tsc"), "-p", dir], {
      cwd: dir,
      encoding: "utf8",
      stdio: "pipe",
    });
    return [];
  } catch (err) {
    const out = String((err as { stdout?: string }).stdout ?? err);
    const problems: string[] = [];
    for (const m of out.matchAll(/rendered\.ts\((\d+),\d+\): error TS\d+: ([^\n]+(?:\n {2,}[^\n]+)*)/g)) {
      const line = Number(m[1]) - header.length;
      const label = where.find((w) => w.line === line)?.label ?? `line ${m[1]}`;
      problems.push(`${label}: ${m[2]!.replace(/\s+/g, " ").slice(0, 400)}`);
    }
    if (problems.length === 0) throw new Error(`tsc failed without type errors:\n${out}`, { cause: err });
    return problems;
  }
}
