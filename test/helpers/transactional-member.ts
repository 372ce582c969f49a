/**
 * A process that behaves as a worker does with WORKER_TRANSACTIONS, stripped to what the
 * fence concerns: a member of a KIP-848 consumer group on one topic, with a transactional
 * producer. Each line on stdin (`<offset> [<ms>]`) is a turn: it runs for <ms> (the
 * generation), then writes one record to the output topic and the input partition's offset
 * in a transaction, at this member's generation. As the worker's scheduler does, a
 * revocation, lost partitions included, is acknowledged only once the running turn has
 * ended. It prints what happens, one line each (`assigned 0`, `started 3`,
 * `revoked 0 lost=true`, `committed 3`, `refused 3 ProducerFenced: …`), so a test can freeze
 * it (SIGSTOP) mid-turn past its session and see what the broker does with it when it wakes.
 *
 *   TRANSACTIONAL_MEMBER_KAFKA='<KafkaConfig JSON>' \
 *     node --import tsx test/helpers/transactional-member.ts <group> <in-topic> <out-topic> <transactional id>
 */
import readline from "node:readline";
import type { KafkaConfig } from "../../contracts/config/shared.js";
import { GroupConsumer } from "../../platform/kafka/group-consumer.js";
import { KafkaProducer } from "../../platform/kafka/producer.js";
import { createLogger } from "../../platform/logger.js";

const [groupId, input, output, transactionalId] = process.argv.slice(2) as [string, string, string, string];
const kafka = JSON.parse(process.env.TRANSACTIONAL_MEMBER_KAFKA ?? "") as KafkaConfig;
const logger = createLogger("transactional-member", "fatal");
const say = (line: string) => process.stdout.write(`${line}\n`);

const group = new GroupConsumer({
  kafka,
  groupId,
  topic: input,
  protocol: "consumer",
  sessionTimeoutMs: 10_000,
  heartbeatIntervalMs: 1000,
  rebalanceTimeoutMs: 30_000,
  logger,
});
let running: Promise<void> = Promise.resolve();
await group.start({
  onAssigned: (partitions) => say(`assigned ${partitions.join(",")}`),
  onRevoked: async (partitions, lost) => {
    say(`revoked ${partitions.join(",")} lost=${lost}`);
    await running;
  },
  onRecord: () => {},
  onFatal: (err) => say(`fatal ${err.message}`),
});
// A long transaction timeout: a refused transaction left open would hold read_committed
// readers back that long, where an aborted one holds nobody.
const producer = await KafkaProducer.connect(kafka, { logger, transactionalId, transactionTimeoutMs: 60_000 });
say("ready");

async function turn(offset: number, generationMs: number): Promise<void> {
  say(`started ${offset}`);
  await new Promise((resolve) => setTimeout(resolve, generationMs));
  try {
    await producer.transaction((sink) => sink.send({ topic: output, messages: [{ partition: 0, value: Buffer.from(`${transactionalId} ${offset}`) }] }), {
      consumer: group.native(),
      offsets: [{ topic: input, partition: 0, offset }],
    });
    say(`committed ${offset}`);
  } catch (err) {
    say(`refused ${offset} ${(err as Error).name}: ${(err as Error).message}`);
  }
}

for await (const line of readline.createInterface({ input: process.stdin })) {
  const [offset, generationMs] = line.split(" ").map(Number) as [number, number | undefined];
  running = turn(offset, generationMs ?? 0);
  await running;
}
