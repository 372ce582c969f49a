/** The broker's server.properties and logging configuration. */
import { majorOf } from "./jars.js";

export function serverProperties(
  version: string,
  port: number,
  controllerPort: number,
  logDirs: string,
  extra: Record<string, string>,
): Record<string, string> {
  const props: Record<string, string> = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.quorum.voters": `1@127.0.0.1:${controllerPort}`,
    listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    "advertised.listeners": `PLAINTEXT://127.0.0.1:${port}`,
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "log.dirs": logDirs,
    "num.partitions": "1",
    "default.replication.factor": "1",
    // One broker: internal topics cannot have more replicas than that.
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    // 50 partitions each by default, all created on first use; one is enough for one broker and
    // keeps the first group join / first transaction quick and the data dir small.
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.num.partitions": "1",
    // Tests want consumers assigned now, not after the 3 s wait for more members.
    "group.initial.rebalance.delay.ms": "0",
    // How long a group's committed offsets outlive its last commit: named history readers'
    // positions are such offsets (gateway/kafka/reader-positions.ts). Kafka's default, said
    // out loud because it should match the default conversation TTL (7 days).
    "offsets.retention.minutes": "10080",
    // Topics come from the app's topic admin; a typo must fail, not create a topic.
    "auto.create.topics.enable": "false",
  };
  if (majorOf(version) >= 4) {
    // 4.x has share groups, whose internal state topic also defaults to 3 replicas.
    props["share.coordinator.state.topic.replication.factor"] = "1";
    props["share.coordinator.state.topic.min.isr"] = "1";
    // KIP-848 consumer groups (group.protocol=consumer): the session and heartbeat bounds
    // are the broker's. Its defaults (45 s session, 5 s heartbeat, and minimums as large)
    // suit a production cluster; a local run and the tests want a crashed worker's
    // partitions moved within seconds. Groups may ask for less down to the minimums.
    props["group.consumer.session.timeout.ms"] = "10000";
    props["group.consumer.min.session.timeout.ms"] = "1000";
    props["group.consumer.heartbeat.interval.ms"] = "1000";
    props["group.consumer.min.heartbeat.interval.ms"] = "500";
  }
  for (const [key, value] of Object.entries(extra)) {
    props[key] = value.replaceAll("${port}", String(port)).replaceAll("${controllerPort}", String(controllerPort));
  }
  return props;
}

/** Security protocol of the listener on `port` (PLAINTEXT unless serverProperties changed it). */
export function protocolOnPort(props: Record<string, string>, port: number): string {
  const listener = (props.listeners ?? "")
    .split(",")
    .map((l) => l.trim())
    .find((l) => l.endsWith(`:${port}`));
  const name = listener?.split("://")[0] ?? "PLAINTEXT";
  const map = new Map(
    (props["listener.security.protocol.map"] ?? "").split(",").map((e) => {
      const [n = "", protocol = ""] = e.split(":");
      return [n.trim(), protocol.trim()] as const;
    }),
  );
  return map.get(name) ?? name;
}

export function toPropertiesFile(props: Record<string, string>): string {
  // Java properties treat '\' as an escape; none of our values need one, paths on Windows aside.
  return (
    Object.entries(props)
      .map(([k, v]) => `${k}=${v.replaceAll("\\", "\\\\")}`)
      .join("\n") + "\n"
  );
}

/** Both logging configs are written; the 3.x (reload4j) and 4.x (log4j2) JVMs each read theirs. */
export const LOG4J_PROPERTIES = `log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
`;
// shutdownHook=disable: log4j2 would otherwise stop itself while Kafka's shutdown still logs.
export const LOG4J2_PROPERTIES = `status = warn
shutdownHook = disable
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
`;
