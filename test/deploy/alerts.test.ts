/**
 * The chart's alerts (templates/prometheusrule.yaml), tested as they ship: the real helm
 * renders the PrometheusRule, which is checked against the Prometheus Operator's schema;
 * its spec, written out as a Prometheus rules file, goes through `promtool check rules` and
 * `promtool test rules` with the unit tests in test/deploy/alerts/ (promtool's format:
 * input series, and for each alert the labels and annotations it fires with, or that it
 * stays quiet). RULE_FILES names each rules file and the values it is rendered with; a
 * test file loads the one it tests by that name.
 *
 * Beside promtool: every alert has a case that fires and one that does not; every selector
 * is scoped to the release, and the tests fail when a rule is not (the release's matchers
 * taken out); the metrics and labels the rules read are the services' own; each alert's
 * runbook_url is a heading of docs/kubernetes.md; the HPA the rules watch is the one the
 * chart makes with either engine.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { createGatewayMetrics } from "../../gateway/metrics.js";
import { WORKER_STATES } from "../../worker/lifecycle.js";
import { createWorkerMetrics } from "../../worker/metrics.js";
import { REPO_ROOT } from "../helpers/services.js";
import { CHART_DIR, find, POOLS_VALUES, render, renderError, VARIANTS, type K8sObject, type RenderOptions } from "./lib/chart.js";
import { validateObject } from "./lib/k8s-schemas.js";
import { toolPath } from "./lib/tools.js";

const TESTS_DIR = path.join(REPO_ROOT, "test", "deploy", "alerts");
const ON = { "metrics.prometheusRule.enabled": true };
/** The release and namespace every rules file is rendered for (lib/chart.ts's defaults). */
const SCOPE = { namespace: "kafka-llm", release: "llm", worker: "llm-kafka-llm-worker" };

/** Rules files the unit tests load, by name, and the values each is rendered with. */
const RULE_FILES: Readonly<Record<string, RenderOptions>> = {
  "default.rules.yaml": { set: ON },
  "fixed-workers.rules.yaml": { set: { ...ON, "autoscaling.enabled": false } },
  // Two model pools, small and large: the lag alerts once per pool.
  "pools.rules.yaml": { valuesFiles: POOLS_VALUES, set: ON },
};

const ALERTS = [
  "KafkaLlmLagGrowingAtMaxWorkers",
  "KafkaLlmNoRunningWorker",
  "KafkaLlmRequestsDeadLettered",
  "KafkaLlmTimeToFirstTokenBudgetBurn",
  "KafkaLlmRebalanceStorm",
  "KafkaLlmGatewayErrors",
  "KafkaLlmWorkerStuck",
];

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
interface RuleSpec {
  groups: Array<{ name: string; rules: Rule[] }>;
}
interface UnitTestFile {
  rule_files: string[];
  tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }>;
}

const testFiles = readdirSync(TESTS_DIR)
  .filter((f) => f.endsWith(".yaml"))
  .sort();
const ruleObject = (objects: readonly K8sObject[]) => find(objects, "PrometheusRule");
const rulesOf = (spec: RuleSpec) => spec.groups.flatMap((g) => g.rules);

function promtool(args: readonly string[], cwd: string): { status: number | null; output: string } {
  const r = spawnSync(toolPath("promtool"), args, { cwd, encoding: "utf8", timeout: 120_000 });
  return { status: r.status, output: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() };
}

/** A rules file as Prometheus reads it; no folding, so an expression reads as rendered. */
const rulesYaml = (spec: RuleSpec) => toYaml(spec, { lineWidth: 0 });

describe("the chart's alerts (PrometheusRule), unit-tested with promtool", () => {
  const work = mkdtempSync(path.join(os.tmpdir(), "chart-alerts-"));
  const rendered: Record<string, K8sObject> = {};
  const spec = (file = "default.rules.yaml") => rendered[file]!.spec as RuleSpec;

  before(() => {
    for (const [file, options] of Object.entries(RULE_FILES)) {
      rendered[file] = ruleObject(render(options));
      writeFileSync(path.join(work, file), rulesYaml(spec(file)));
    }
    for (const f of testFiles) copyFileSync(path.join(TESTS_DIR, f), path.join(work, f));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it("is rendered only with metrics.prometheusRule.enabled", () => {
    assert.equal(render().filter((o) => o.kind === "PrometheusRule").length, 0);
    assert.deepEqual(
      rulesOf(spec())
        .map((r) => r.alert)
        .filter((a, i, all) => all.indexOf(a) === i),
      ALERTS,
    );
  });

  // Unknown fields: chart.test.ts checks every object of the CI variants (ci/gpu-values.yaml
  // and ci/keda-values.yaml render this one) with unknownFieldErrors.
  it("is valid against the Prometheus Operator's PrometheusRule schema", async () => {
    for (const obj of Object.values(rendered)) assert.deepEqual(await validateObject(obj), []);
    const broken = structuredClone(rendered["default.rules.yaml"]!);
    (broken.spec as RuleSpec).groups[0]!.rules[0]!.for = "a while";
    assert.match((await validateObject(broken)).join(), /for/, "the validator reads the rules");
  });

  it("promtool check rules accepts every rendered rules file", () => {
    for (const file of Object.keys(RULE_FILES)) {
      const r = promtool(["check", "rules", file], work);
      assert.equal(r.status, 0, r.output);
      assert.match(r.output, /SUCCESS: \d+ rules found/);
    }
  });

  for (const file of testFiles) {
    it(`promtool test rules ${file}`, () => {
      const r = promtool(["test", "rules", file], work);
      assert.equal(r.status, 0, `promtool test rules ${file} failed:\n${r.output}`);
    });
  }

  it("every alert has a case where it fires and one where it stays quiet; each test file loads a rendered rules file", () => {
    const fires = new Set<string>();
    const quiet = new Set<string>();
    for (const f of testFiles) {
      const t = parseYaml(readFileSync(path.join(TESTS_DIR, f), "utf8")) as UnitTestFile;
      for (const rf of t.rule_files) assert.ok(rf in RULE_FILES, `${f} loads ${rf}, which is not rendered (RULE_FILES)`);
      for (const c of t.tests.flatMap((x) => x.alert_rule_test ?? [])) {
        ((c.exp_alerts?.length ?? 0) > 0 ? fires : quiet).add(c.alertname);
      }
    }
    assert.deepEqual([...fires].sort(), [...ALERTS].sort(), "a firing case per alert");
    assert.deepEqual([...quiet].sort(), [...ALERTS].sort(), "a quiet case per alert");
  });

  for (const [what, strip] of [
    [
      "the release label",
      (e: string) => e.replaceAll(`app_kubernetes_io_instance="${SCOPE.release}",`, "").replaceAll(`app_kubernetes_io_instance="${SCOPE.release}"`, ""),
    ],
    ["the namespace", (e: string) => e.replaceAll(`namespace="${SCOPE.namespace}",`, "")],
  ] as const) {
    it(`the tests fail for every alert when its rules stop selecting ${what}`, () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), "chart-alerts-unscoped-"));
      try {
        for (const file of Object.keys(RULE_FILES)) {
          const unscoped = structuredClone(spec(file));
          for (const rule of rulesOf(unscoped)) {
            const e = strip(rule.expr);
            assert.notEqual(e, rule.expr, `${rule.alert} selects ${what}`);
            rule.expr = e;
          }
          writeFileSync(path.join(dir, file), rulesYaml(unscoped));
        }
        for (const f of testFiles) copyFileSync(path.join(TESTS_DIR, f), path.join(dir, f));
        const r = promtool(["test", "rules", ...testFiles], dir);
        assert.notEqual(r.status, 0);
        for (const alert of ALERTS) assert.match(r.output, new RegExp(`alertname: ${alert},`), `a test of ${alert} notices\n${r.output}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it("every selector is this release's: its series by namespace and instance, kube-state-metrics' by namespace and the worker's (or a pool's worker's) name", () => {
    const scoped = `namespace="${SCOPE.namespace}",app_kubernetes_io_instance="${SCOPE.release}"`;
    for (const file of Object.keys(RULE_FILES)) {
      for (const rule of rulesOf(spec(file))) {
        const names = [...rule.expr.matchAll(/\b(kafka_llm_\w+|kube_\w+)(\{[^}]*\})?/g)];
        assert.ok(names.length > 0, rule.alert);
        for (const [, name, selector] of names) {
          assert.ok(selector, `${rule.alert}: ${name} without a selector`);
          if (name!.startsWith("kafka_llm_")) assert.ok(selector.startsWith(`{${scoped}`), `${rule.alert}: ${name}${selector}`);
          else
            assert.match(
              selector,
              new RegExp(`^\\{namespace="${SCOPE.namespace}",(horizontalpodautoscaler|deployment)="${SCOPE.worker}(-(small|large))?"\\}$`),
              `${rule.alert}: ${name}`,
            );
        }
      }
    }
  });

  it("reads only metrics and labels the gateway and the workers export", async () => {
    const worker = createWorkerMetrics("w-0");
    const gateway = createGatewayMetrics({ trackedRequests: () => 0, recentTurns: () => ({ meanSeconds: 0, count: 0 }) });
    const scopeLabels = new Set(["namespace", "app_kubernetes_io_instance"]);
    // Labels the worker's registry puts on every series (its worker_id and pool); prom-client
    // keeps them on the registry, the typings leave them out.
    const workerDefaults = Object.keys((worker.registry as unknown as { _defaultLabels: Record<string, string> })._defaultLabels);
    assert.ok(workerDefaults.includes("pool"), "every worker series carries its pool");
    for (const rule of [...rulesOf(spec()), ...rulesOf(spec("pools.rules.yaml"))]) {
      for (const [, name, matchers] of rule.expr.matchAll(/\b(kafka_llm_\w+)\{([^}]*)\}/g)) {
        const histogram = /_(bucket|count|sum)$/.exec(name!);
        const base = histogram ? name!.slice(0, histogram.index) : name!;
        const metric = worker.registry.getSingleMetric(base) ?? gateway.registry.getSingleMetric(base);
        assert.ok(metric, `${rule.alert}: ${base} is exported by neither service`);
        // prom-client keeps a metric's label names on the object; the typings leave it out.
        const own = (metric as unknown as { labelNames: readonly string[] }).labelNames;
        assert.ok(Array.isArray(own));
        const labelNames = worker.registry.getSingleMetric(base) ? [...own, ...workerDefaults] : own;
        for (const [, label] of matchers!.matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)) {
          if (scopeLabels.has(label!) || (histogram?.[1] === "bucket" && label === "le")) continue;
          assert.ok(labelNames.includes(label!), `${rule.alert}: ${base} has no label ${label} (${labelNames.join(", ")})`);
        }
      }
    }
    for (const rule of rulesOf(spec()).filter((r) => r.alert === "KafkaLlmWorkerStuck")) {
      assert.ok((WORKER_STATES as readonly string[]).includes(rule.labels.state!), `the worker has a state ${rule.labels.state}`);
    }
    // The SLO thresholds the schema allows are the time-to-first-token histogram's bucket bounds.
    worker.timeToFirstToken.observe(1);
    const bounds = (await worker.timeToFirstToken.get()).values
      .filter((v) => v.metricName?.endsWith("_bucket") && v.labels.le !== "+Inf")
      .map((v) => String(v.labels.le));
    const schema = JSON.parse(readFileSync(path.join(CHART_DIR, "values.schema.json"), "utf8")) as {
      properties: {
        metrics: { properties: { prometheusRule: { properties: { timeToFirstToken: { properties: { thresholdSeconds: { enum: unknown[] } } } } } } };
      };
    };
    const allowed = schema.properties.metrics.properties.prometheusRule.properties.timeToFirstToken.properties.thresholdSeconds.enum;
    assert.deepEqual(
      allowed.filter((v) => typeof v === "string"),
      bounds,
    );
    assert.deepEqual(allowed.filter((v) => typeof v === "number").map(String), bounds);
  });

  it("every alert has a severity, a summary, a description and a runbook_url at its own heading of docs/kubernetes.md", () => {
    const doc = readFileSync(path.join(REPO_ROOT, "docs", "kubernetes.md"), "utf8");
    // GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
    const anchors = new Set(
      [...doc.matchAll(/^#+ (.+)$/gm)].map((m) =>
        m[1]!
          .trim()
          .toLowerCase()
          .replace(/[^\w\- ]/g, "")
          .replace(/ /g, "-"),
      ),
    );
    const base = "https://github.com/kafka-llm/kafka-llm/blob/main/docs/kubernetes.md";
    for (const rule of rulesOf(spec())) {
      assert.ok(["critical", "warning"].includes(rule.labels.severity!), `${rule.alert}: severity ${rule.labels.severity}`);
      assert.ok(rule.annotations.summary && rule.annotations.description, rule.alert);
      assert.doesNotMatch(JSON.stringify(rule.annotations), /%!|<no value>/, `${rule.alert}: a template went wrong`);
      assert.equal(rule.annotations.runbook_url, `${base}#${rule.alert.toLowerCase()}`);
      assert.ok(anchors.has(rule.alert.toLowerCase()), `docs/kubernetes.md has a heading "${rule.alert}"`);
    }
  });

  it("watches the HPA the chart makes with either engine (KEDA's is named after the ScaledObject's horizontalPodAutoscalerConfig)", () => {
    const watched = (obj: K8sObject) => [...new Set([...JSON.stringify(obj.spec).matchAll(/horizontalpodautoscaler=\\"([^\\"]+)\\"/g)].map((m) => m[1]))];
    const hpaObjects = render({ set: ON });
    assert.deepEqual(watched(ruleObject(hpaObjects)), [find(hpaObjects, "HorizontalPodAutoscaler").metadata.name]);
    const keda = render({ valuesFiles: VARIANTS.keda!, set: ON });
    const scaled = find(keda, "ScaledObject").spec as { advanced: { horizontalPodAutoscalerConfig: { name: string } } };
    assert.deepEqual(watched(ruleObject(keda)), [scaled.advanced.horizontalPodAutoscalerConfig.name]);
    assert.equal(find(keda, "Deployment", "-worker").metadata.name, SCOPE.worker);
    assert.deepEqual(watched(rendered["fixed-workers.rules.yaml"]!), [], "no autoscaling: no HPA to watch");
    // Pools: each pool's lag alert watches its own pool's HPA, with either engine.
    for (const files of [POOLS_VALUES, [...POOLS_VALUES, ...VARIANTS.keda!]]) {
      const objects = render({ valuesFiles: files, set: ON });
      const hpaNames = objects
        .filter((o) => o.kind === "HorizontalPodAutoscaler" || o.kind === "ScaledObject")
        .map((o) =>
          o.kind === "ScaledObject"
            ? (o.spec as { advanced: { horizontalPodAutoscalerConfig: { name: string } } }).advanced.horizontalPodAutoscalerConfig.name
            : o.metadata.name,
        );
      assert.deepEqual(watched(ruleObject(objects)), hpaNames);
      const lagRules = rulesOf(ruleObject(objects).spec as RuleSpec).filter((r) => r.alert === "KafkaLlmLagGrowingAtMaxWorkers");
      assert.deepEqual(
        lagRules.map((r) => /pool="([^"]+)"/.exec(r.expr)?.[1]),
        ["small", "large"],
        "one lag rule per pool, on the pool's own lag",
      );
      for (const r of lagRules) assert.match(r.expr, new RegExp(`horizontalpodautoscaler="${SCOPE.worker}-${/pool="([^"]+)"/.exec(r.expr)![1]}"`));
    }
  });

  it("takes its thresholds, labels and runbook from the values, and the schema refuses what would never fire", () => {
    const custom = ruleObject(
      render({
        set: {
          ...ON,
          "metrics.prometheusRule.labels": { release: "kube-prometheus-stack" },
          "metrics.prometheusRule.alertLabels": { team: "llm" },
          "metrics.prometheusRule.runbookBaseUrl": "",
          "metrics.prometheusRule.disabled": ["KafkaLlmRebalanceStorm"],
          "metrics.prometheusRule.timeToFirstToken": { target: 0.995, thresholdSeconds: 5 },
          "metrics.prometheusRule.workerStuck.for.joining": "2m",
          "metrics.prometheusRule.gatewayErrors.ratio": 0.1,
        },
      }),
    );
    assert.equal(custom.metadata.labels?.release, "kube-prometheus-stack");
    const rules = rulesOf(custom.spec as RuleSpec);
    assert.ok(!rules.some((r) => r.alert === "KafkaLlmRebalanceStorm"));
    for (const r of rules) {
      assert.equal(r.labels.team, "llm");
      assert.equal(r.annotations.runbook_url, undefined);
    }
    const slo = rules.filter((r) => r.alert === "KafkaLlmTimeToFirstTokenBudgetBurn");
    assert.equal(slo.length, 2);
    for (const r of slo) {
      assert.ok(!r.expr.includes('le="2.5"') && r.expr.includes('le="5"') && r.expr.includes("(1 - 0.995)"), r.expr);
    }
    assert.equal(rules.find((r) => r.alert === "KafkaLlmWorkerStuck" && r.labels.state === "joining")?.for, "2m");
    assert.match(rules.find((r) => r.alert === "KafkaLlmGatewayErrors")!.expr, /> 0\.1$/);

    const refused = (set: Record<string, string | number | object>) => renderError({ set: { ...ON, ...set } });
    assert.match(refused({ "metrics.prometheusRule.timeToFirstToken.thresholdSeconds": 3 }), /thresholdSeconds/, "not a bucket bound: no series");
    assert.match(refused({ "metrics.prometheusRule.noRunningWorker.for": "ten minutes" }), /noRunningWorker.for/);
    assert.match(refused({ "metrics.prometheusRule.alertLabels": { severity: "page" } }), /alertLabels/);
    assert.match(refused({ "metrics.prometheusRule.disabled": ["KafkaLlmSomethingElse"] }), /disabled/);
    assert.match(refused({ "metrics.prometheusRule.runbookBaseUrl": "docs/kubernetes.md" }), /runbookBaseUrl/, "a repository path is not a URL");
  });
});
