/**
 * Each component of the chart connects to Kafka as its own principal, allowed exactly what
 * contracts/kafka-acls.ts says it needs. Rendered with the real helm: the KafkaUsers the
 * chart makes for Strimzi carry the ACLs of componentAcls() for the names the services
 * themselves read from the chart (their own config loaders), for the default names and for
 * a topic prefix with custom groups; every Deployment, Job and TriggerAuthentication
 * authenticates as its own component's user with that user's Secret; and the chart refuses
 * the settings that would share a principal or send a password in clear.
 *
 * No Strimzi schema is available offline (no package of the registries here carries its
 * CRDs, and its CRD generator is not published), so the KafkaUser's shape is checked here
 * field by field against Strimzi's API reference (v1beta2: KafkaUser, AclRule).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { loadGatewayConfig } from "../../contracts/config/gateway.js";
import { loadKafkaConfig } from "../../contracts/config/shared.js";
import { loadWorkerConfig } from "../../contracts/config/worker.js";
import { componentAcls, KAFKA_COMPONENTS, type AclRule, type KafkaComponent } from "../../contracts/kafka-acls.js";
import { topicNames } from "../../contracts/topics.js";
import { REPO_ROOT } from "../helpers/services.js";
import { containerEnv, envWithMountedSecrets, find, render, renderError, renderNotes, VARIANTS, type K8sObject, type PodSpec } from "./lib/chart.js";

const secretsRoot = mkdtempSync(path.join(os.tmpdir(), "chart-users-"));
after(() => rmSync(secretsRoot, { recursive: true, force: true }));

/** Production values with KEDA's Kafka trigger, so that all four components connect. */
const ALL_FOUR = [...VARIANTS.production!, ...VARIANTS.keda!];

interface StrimziAcl {
  resource: { type: string; name: string; patternType: string };
  operations: string[];
  host: string;
}

const podOf = (o: K8sObject): PodSpec => (o.spec as { template: { spec: PodSpec } }).template.spec;
const users = (objs: readonly K8sObject[]) => objs.filter((o) => o.kind === "KafkaUser");
const componentOf = (o: K8sObject) => o.metadata.labels?.["app.kubernetes.io/component"] as KafkaComponent;
const aclsOf = (u: K8sObject) => (u.spec as { authorization: { acls: StrimziAcl[] } }).authorization.acls;

/** A componentAcls() rule as Strimzi spells it: Kafka's "prefixed" is Strimzi's "prefix". */
function strimziAcl(rule: AclRule): StrimziAcl {
  const { type, name, patternType } = rule.resource;
  return { resource: { type, name, patternType: patternType === "prefixed" ? "prefix" : patternType }, operations: [...rule.operations], host: "*" };
}

/** The names of an install as its services read them from the chart: their own config loaders. */
function namesFromServices(objs: K8sObject[], tag: string) {
  const env = (o: K8sObject) => envWithMountedSecrets(objs, podOf(o), podOf(o).containers[0]!, path.join(secretsRoot, tag, o.metadata.name));
  const w = loadWorkerConfig(env(find(objs, "Deployment", "-worker")));
  const g = loadGatewayConfig(env(find(objs, "Deployment", "-gateway")));
  assert.equal(g.workerGroupId, w.workerGroupId, "the gateways describe the workers' group");
  assert.equal(g.kafka.topicPrefix, w.kafka.topicPrefix);
  return { topics: topicNames(w.kafka.topicPrefix), workerGroup: w.workerGroupId, gatewayGroup: g.events.groupId };
}

describe("a KafkaUser per component, with exactly the ACLs of contracts/kafka-acls.ts", () => {
  const cases: Array<{ label: string; set: Record<string, string>; expect: { prefix: string; workerGroup: string; gatewayGroup: string } }> = [
    { label: "default names", set: {}, expect: { prefix: "", workerGroup: "kafka-llm-workers", gatewayGroup: "kafka-llm-gateways" } },
    {
      label: "a topic prefix and custom groups",
      set: { "kafka.topicPrefix": "team-a.", "kafka.groupId": "team-a-llm-workers", "kafka.gatewayGroupId": "team-a-llm-gateways" },
      expect: { prefix: "team-a.", workerGroup: "team-a-llm-workers", gatewayGroup: "team-a-llm-gateways" },
    },
    {
      label: "a topic prefix and the gateways' default group (prefixed, as contracts/config/gateway.ts makes it)",
      set: { "kafka.topicPrefix": "t1-" },
      expect: { prefix: "t1-", workerGroup: "kafka-llm-workers", gatewayGroup: "t1-kafka-llm-gateways" },
    },
  ];
  for (const c of cases) {
    it(`${c.label}: every rendered KafkaUser's ACLs equal componentAcls() for its component`, () => {
      const objs = render({ valuesFiles: ALL_FOUR, set: c.set });
      const names = namesFromServices(objs, c.label);
      assert.deepEqual(
        { prefix: names.topics.requests.replace(/chat\.requests$/, ""), workerGroup: names.workerGroup, gatewayGroup: names.gatewayGroup },
        c.expect,
        "the services read the names the values set",
      );
      const expected = componentAcls(names);
      const rendered = users(objs);
      assert.deepEqual(rendered.map(componentOf).sort(), [...KAFKA_COMPONENTS].sort(), "one user per component");
      for (const u of rendered) {
        const component = componentOf(u);
        assert.deepEqual(aclsOf(u), expected[component].map(strimziAcl), `${component}: its ACLs, in order, nothing more`);
      }
    });
  }

  it("only the components that run get a user: no topics Job, no KEDA Kafka trigger, no user for them", () => {
    const plain = render({ valuesFiles: VARIANTS.production!, set: { "topics.job.enabled": false } });
    assert.deepEqual(users(plain).map(componentOf).sort(), ["gateway", "worker"]);
    // KEDA with a TriggerAuthentication of the user's own: the chart's autoscaler user is not needed.
    const theirs = render({ valuesFiles: ALL_FOUR, set: { "autoscaling.keda.authenticationRef": "mine" } });
    assert.deepEqual(users(theirs).map(componentOf).sort(), ["gateway", "topics", "worker"]);
    assert.equal(users(render()).length, 0, "no Strimzi users unless asked for");
  });

  it("is a Strimzi v1beta2 KafkaUser as its API reference describes it: SCRAM-SHA-512, simple authorization, allow rules", () => {
    const objs = render({ valuesFiles: ALL_FOUR });
    for (const u of users(objs)) {
      assert.equal(u.apiVersion, "kafka.strimzi.io/v1beta2");
      assert.equal(u.metadata.labels?.["strimzi.io/cluster"], "kafka", "the Strimzi cluster's User Operator picks it up");
      assert.match(u.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "a name a Secret can have (Strimzi names the user's Secret after it)");
      const spec = u.spec as Record<string, unknown>;
      assert.deepEqual(Object.keys(spec).sort(), ["authentication", "authorization"]);
      assert.deepEqual(spec.authentication, { type: "scram-sha-512" });
      const authz = spec.authorization as Record<string, unknown>;
      assert.deepEqual(Object.keys(authz).sort(), ["acls", "type"]);
      assert.equal(authz.type, "simple");
      for (const acl of aclsOf(u)) {
        assert.deepEqual(Object.keys(acl).sort(), ["host", "operations", "resource"]);
        assert.deepEqual(Object.keys(acl.resource).sort(), ["name", "patternType", "type"]);
        assert.ok(["topic", "group", "transactionalId"].includes(acl.resource.type), `Strimzi's resource types: ${acl.resource.type}`);
        assert.ok(["literal", "prefix"].includes(acl.resource.patternType), `Strimzi's patternType enum: ${acl.resource.patternType}`);
        assert.ok(acl.operations.length > 0);
        for (const op of acl.operations) {
          assert.ok(
            ["Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction", "AlterConfigs", "DescribeConfigs", "IdempotentWrite", "All"].includes(
              op,
            ),
            op,
          );
        }
      }
    }
  });
});

describe("each component authenticates as its own user, with its own Secret", () => {
  type Ref = { name: string; key: string };
  function saslSecret(spec: PodSpec): Ref {
    const item = spec.volumes!.find((v) => v.name === "kafka-sasl")!.secret as { secretName: string; items: Array<{ key: string; path: string }> };
    assert.deepEqual(
      item.items.map((i) => i.path),
      ["password"],
    );
    return { name: item.secretName, key: item.items[0]!.key };
  }
  function check(objs: K8sObject[], expected: (c: KafkaComponent) => { user: string; secret: Ref }, tag: string) {
    const pods: Array<[KafkaComponent, K8sObject]> = [
      ["gateway", find(objs, "Deployment", "-gateway")],
      ["worker", find(objs, "Deployment", "-worker")],
      ["topics", find(objs, "Job", "-topics-1")],
    ];
    for (const [component, owner] of pods) {
      const spec = podOf(owner);
      const c = spec.containers[0]!;
      assert.equal(containerEnv(objs, c).KAFKA_SASL_USERNAME, expected(component).user, `${owner.metadata.name}: ${component}'s user`);
      assert.deepEqual(saslSecret(spec), expected(component).secret, `${owner.metadata.name}: ${component}'s Secret`);
      // And the service's own loader reads that user and the mounted password file.
      const kafka = loadKafkaConfig(envWithMountedSecrets(objs, spec, c, path.join(secretsRoot, tag, owner.metadata.name)));
      assert.equal(kafka.sasl?.username, expected(component).user);
      assert.ok(kafka.sasl?.password, "a password from the mounted file");
    }
    const auth = find(objs, "TriggerAuthentication").spec as {
      configMapTargetRef: Array<{ parameter: string; name: string; key: string }>;
      secretTargetRef: Array<{ parameter: string; name: string; key: string }>;
    };
    const userRef = auth.configMapTargetRef.find((r) => r.parameter === "username")!;
    assert.equal(
      (find(objs, "ConfigMap", userRef.name).data as Record<string, string>)[userRef.key],
      expected("autoscaler").user,
      "KEDA: the autoscaler's user",
    );
    const pw = auth.secretTargetRef.find((r) => r.parameter === "password")!;
    assert.deepEqual({ name: pw.name, key: pw.key }, expected("autoscaler").secret, "KEDA: the autoscaler's Secret");
  }

  it("with Strimzi users: the user is the KafkaUser, the password the Secret Strimzi makes for it", () => {
    const objs = render({ valuesFiles: ALL_FOUR });
    const byComponent = new Map(users(objs).map((u) => [componentOf(u), u.metadata.name]));
    check(objs, (c) => ({ user: byComponent.get(c)!, secret: { name: byComponent.get(c)!, key: "password" } }), "strimzi");
    assert.equal(new Set(byComponent.values()).size, 4, "four principals");
    assert.equal(objs.filter((o) => o.kind === "Secret").length, 0, "no password in the chart's output");
  });

  it("with Secrets of your own (external-kafka): each component's username and existingSecret", () => {
    const objs = render({ valuesFiles: [...VARIANTS["external-kafka"]!, ...VARIANTS.keda!], set: { "autoscaling.maxReplicas": 12 } });
    check(objs, (c) => ({ user: `team-a-llm-${c}`, secret: { name: `team-a-llm-kafka-${c}`, key: "password" } }), "external");
  });

  it("with passwords in the values (local and CI): each in the chart's Secret under its component's key", () => {
    const set = Object.fromEntries(KAFKA_COMPONENTS.map((c) => [`kafka.sasl.${c}.password`, `pw-${c}`]));
    const objs = render({ valuesFiles: VARIANTS.keda!, set: { "kafka.sasl.enabled": true, ...set } });
    check(objs, (c) => ({ user: `llm-kafka-llm-${c}`, secret: { name: "llm-kafka-llm", key: `kafka-${c}-password` } }), "values");
    const data = find(objs, "Secret").data as Record<string, string>;
    for (const c of KAFKA_COMPONENTS) assert.equal(Buffer.from(data[`kafka-${c}-password`]!, "base64").toString(), `pw-${c}`);
  });
});

describe("what the chart refuses, saying why", () => {
  it("PLAIN without TLS (the password would cross the network in clear)", () => {
    const set = {
      "kafka.sasl.enabled": true,
      "kafka.sasl.mechanism": "plain",
      "kafka.sasl.gateway.password": "x",
      "kafka.sasl.worker.password": "x",
      "kafka.sasl.topics.password": "x",
    };
    assert.match(renderError({ set }), /kafka.sasl.mechanism plain without kafka.tls.enabled would send every password in clear/);
    assert.equal(render({ set: { ...set, "kafka.tls.enabled": true } }).length > 0, true, "PLAIN over TLS is fine");
  });

  it("a component without a password source, two components sharing one user, Strimzi users without SCRAM-SHA-512", () => {
    assert.match(
      renderError({ set: { "kafka.sasl.enabled": true, "kafka.sasl.gateway.existingSecret": "g", "kafka.sasl.worker.existingSecret": "w" } }),
      /kafka.sasl.topics needs existingSecret \(a Secret with its password\), kafka.strimzi.users, or password/,
    );
    assert.match(
      renderError({ valuesFiles: VARIANTS.production!, set: { "kafka.sasl.gateway.username": "shared", "kafka.sasl.worker.username": "shared" } }),
      /kafka.sasl.gateway and kafka.sasl.worker are both user shared: each component needs a principal of its own/,
    );
    assert.match(renderError({ valuesFiles: VARIANTS.production!, set: { "kafka.sasl.enabled": false } }), /kafka.strimzi.users needs kafka.sasl.enabled/);
    assert.match(
      renderError({ valuesFiles: VARIANTS.production!, set: { "kafka.sasl.mechanism": "scram-sha-256" } }),
      /set kafka.sasl.mechanism scram-sha-512/,
    );
  });

  it("group names where one component's prefixed ACL would reach the other's groups", () => {
    assert.match(renderError({ set: { "kafka.gatewayGroupId": "kafka-llm-workers" } }), /must not be one another or start with the other and a dot/);
    assert.match(renderError({ set: { "kafka.gatewayGroupId": "kafka-llm-workers.gw" } }), /must not be one another/);
    assert.match(renderError({ set: { "kafka.groupId": "kafka-llm-gateways.w" } }), /must not be one another/);
    // The same rule as the contract's.
    assert.throws(() => componentAcls({ topics: topicNames(""), workerGroup: "kafka-llm-workers", gatewayGroup: "kafka-llm-workers.gw" }));
  });
});

describe("docs/kubernetes.md's kafka-acls.sh commands", () => {
  it("grant each default user exactly componentAcls() for the default names", () => {
    const doc = readFileSync(path.join(REPO_ROOT, "docs", "kubernetes.md"), "utf8");
    const granted = new Map<string, AclRule[]>();
    for (const m of doc.matchAll(/^acl User:llm-kafka-llm-(\w+) (.+)$/gm)) {
      const args = m[2]!.split(/\s+/);
      const arg = (flag: string) => args[args.indexOf(flag) + 1];
      const flag = ["--topic", "--group", "--transactional-id"].find((f) => args.includes(f))!;
      const type = ({ "--topic": "topic", "--group": "group", "--transactional-id": "transactionalId" } as const)[flag as "--topic"];
      const rule: AclRule = {
        resource: {
          type,
          name: arg(flag)!,
          patternType: args.includes("--resource-pattern-type") ? (arg("--resource-pattern-type") as "prefixed") : "literal",
        },
        operations: args.flatMap((a, i) => (args[i - 1] === "--operation" ? [a as AclRule["operations"][number]] : [])),
      };
      granted.set(m[1]!, [...(granted.get(m[1]!) ?? []), rule]);
    }
    const expected = componentAcls({ topics: topicNames(""), workerGroup: "kafka-llm-workers", gatewayGroup: "kafka-llm-gateways" });
    assert.deepEqual(Object.fromEntries(granted), expected);
  });
});

describe("plaintext is for local and CI clusters: NOTES.txt says so, production does not need the warning", () => {
  it("warns without SASL and TLS, and with SASL but no TLS; not for the production values", () => {
    assert.match(renderNotes(), /WARNING: Kafka is reached without SASL or TLS \(anonymous, unencrypted\):\nfor local and CI clusters only/);
    const scramNoTls = renderNotes({
      set: { "kafka.sasl.enabled": true, ...Object.fromEntries(KAFKA_COMPONENTS.map((c) => [`kafka.sasl.${c}.password`, "x"])) },
    });
    assert.match(scramNoTls, /WARNING: Kafka is reached with SASL but without TLS \(records in clear\)/);
    assert.doesNotMatch(renderNotes({ valuesFiles: VARIANTS.production! }), /WARNING/);
  });
});
