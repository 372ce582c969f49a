/**
 * The broker as the fence (WORKER_TRANSACTIONS): a member of the workers' kind of group
 * (KIP-848) that was frozen past its session and replaced cannot commit a transaction when
 * it wakes, and read_committed readers (every reader of the project's, testkit's readTopic
 * included) see nothing of what it tried. What the worker builds on: worker/turn.ts
 * writeTurn puts a turn's records and its request offset in one such transaction.
 *
 * The members are processes (test/helpers/transactional-member.ts), so SIGSTOP freezes
 * librdkafka's heartbeats as it would freeze a paused pod.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { KafkaAdmin } from "../../platform/kafka/admin.js";
import { KafkaProducer, TransactionAborted } from "../../platform/kafka/producer.js";
import { createLogger } from "../../platform/logger.js";
import { kafkaConfigFor, readTopic, uniquePrefix, useKafka, type TestKafka } from "../helpers/kafka.js";
import { eventually } from "../helpers/gateway.js";
import { REPO_ROOT } from "../helpers/services.js";

interface Member {
  proc: ChildProcessWithoutNullStreams;
  lines: string[];
  send(line: string): void;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

describe("Kafka transactions fence a replaced group member", { timeout: 180_000 }, () => {
  let kafka: TestKafka;
  let admin: KafkaAdmin;
  const members: Member[] = [];
  const prefix = uniquePrefix("tx");
  const input = `${prefix}in`;
  const output = `${prefix}out`;
  const group = `${prefix}group`;

  function member(name: string): Member {
    const proc = spawn(
      process.execPath,
      ["--import", "tsx", path.join(REPO_ROOT, "test/helpers/transactional-member.ts"), group, input, output, `${prefix}tx.${name}`],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, TRANSACTIONAL_MEMBER_KAFKA: JSON.stringify(kafkaConfigFor(kafka)) },
      },
    );
    const lines: string[] = [];
    let partial = "";
    proc.stdout.on("data", (chunk: Buffer) => {
      const text = partial + chunk.toString();
      const all = text.split("\n");
      partial = all.pop()!;
      lines.push(...all);
    });
    proc.stderr.resume();
    const m: Member = {
      proc,
      lines,
      send: (line) => proc.stdin.write(`${line}\n`),
      async waitFor(pattern, timeoutMs = 60_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const hit = lines.find((l) => pattern.test(l));
          if (hit) return hit;
          if (Date.now() > deadline) throw new Error(`${name}: no line matching ${pattern} in ${timeoutMs} ms; it said: ${lines.join(" | ")}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      },
    };
    members.push(m);
    return m;
  }

  before(async () => {
    kafka = await useKafka();
    admin = new KafkaAdmin(kafkaConfigFor(kafka));
    await admin.createTopics([
      { name: input, partitions: 1, replicationFactor: 1, configs: {} },
      { name: output, partitions: 1, replicationFactor: 1, configs: {} },
    ]);
  });

  after(async () => {
    for (const m of members) {
      m.proc.kill("SIGCONT");
      m.proc.kill("SIGKILL");
    }
    admin?.close();
    await kafka?.stop();
  });

  it("refuses the transaction of a member frozen mid-turn past its session; readers and the group see only its successor's", async () => {
    const a = member("a");
    await a.waitFor(/^assigned 0$/);
    await a.waitFor(/^ready$/);
    a.send("1");
    await a.waitFor(/^committed 1$/);

    const b = member("b");
    await b.waitFor(/^ready$/);
    a.send("3 2000");
    await a.waitFor(/^started 3$/);
    a.proc.kill("SIGSTOP");
    // The broker gives b the partition once a's session (10 s on the local broker) has passed.
    await b.waitFor(/^assigned 0$/, 60_000);
    b.send("2");
    await b.waitFor(/^committed 2$/);

    a.proc.kill("SIGCONT");
    const answer = await a.waitFor(/^(committed|refused) 3/, 60_000);
    assert.match(answer, /^refused 3 ProducerFenced/, `the broker refuses a replaced member's transaction; it said: ${a.lines.join(" | ")}`);

    // The refused transaction was aborted, not left open (its timeout is 60 s): readers see the
    // successor's next write as soon as it is committed.
    b.send("4");
    await b.waitFor(/^committed 4$/);
    const values = await eventually(
      async () => {
        const read = (await readTopic(kafkaConfigFor(kafka), output)).map((r) => r.value?.toString());
        return read.length >= 3 ? read : undefined;
      },
      20_000,
      "the successor's second write to be read",
    );
    assert.deepEqual(values, [`${prefix}tx.a 1`, `${prefix}tx.b 2`, `${prefix}tx.b 4`], "read_committed: nothing of the refused transaction");
    assert.deepEqual([...(await admin.committed(group, input, [0]))], [[0, 4]], "the group's offset is the successor's");
  });

  it("an aborted transaction's records are never read, and readers pass them", async () => {
    const producer = await KafkaProducer.connect(kafkaConfigFor(kafka), {
      logger: createLogger("test", "fatal"),
      transactionalId: `${prefix}tx.aborting`,
      transactionTimeoutMs: 10_000,
    });
    try {
      await assert.rejects(
        producer.transaction(async (sink) => {
          await sink.send({ topic: output, messages: [{ partition: 0, value: Buffer.from("aborted") }] });
          throw new Error("the turn failed after its first write");
        }),
        (err: unknown) => err instanceof TransactionAborted && /the turn failed after its first write/.test(err.message),
      );
      await producer.transaction((sink) => sink.send({ topic: output, messages: [{ partition: 0, value: Buffer.from("after") }] }));
    } finally {
      await producer.disconnect();
    }
    // A commit returns before the coordinator has written its markers to the partition, so
    // the last stable offset (a read_committed reader's end) follows a moment later.
    const values = await eventually(
      async () => {
        const read = (await readTopic(kafkaConfigFor(kafka), output)).map((r) => r.value?.toString());
        return read.at(-1) === "after" ? read : undefined;
      },
      10_000,
      "the reader to reach the committed record, past the aborted records and the markers",
    );
    assert.ok(!values.includes("aborted"), `no aborted record: ${values.join(", ")}`);
  });
});
