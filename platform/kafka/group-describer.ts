/**
 * Describes the worker group as Kafka has it: its members, each with its client id and the
 * partitions assigned to it. librdkafka's DescribeConsumerGroups speaks ConsumerGroupDescribe
 * to a KIP-848 group (the workers' default) and DescribeGroups to a classic one.
 *
 * The call runs in a child process (group-describer-child.ts): the binding's describeGroups
 * crashes its process while the brokers are unreachable
 * (confluentinc/confluent-kafka-javascript#531, open), and a gateway must ride out a broker
 * outage. A child that dies fails the calls in flight (the callers answer 503 and retry)
 * and is started again for the next call: at most once a second, and while it keeps dying
 * (the brokers are away) ever more rarely, up to once every 30 s, so that starting
 * processes does not take the CPU the brokers' return and everything else need. The first
 * answer it gives brings the pace back to once a second.
 */
import { fork, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { KafkaConfig } from "../../contracts/config/shared.js";
import type { Logger } from "../logger.js";
import type { DescriberReply, DescriberRequest } from "./group-describer-child.js";

export interface GroupMember {
  readonly clientId: string;
  /** The partitions of the described topic assigned to this member. */
  readonly partitions: number[];
}

export interface GroupDescription {
  /** librdkafka's group state (3: stable). */
  readonly state: number;
  /** "consumer" (KIP-848) or "classic". */
  readonly type: "consumer" | "classic" | "unknown";
  readonly members: GroupMember[];
}

/** The least time between two starts of the child, ms; it doubles while the child keeps dying, up to MAX_RESPAWN_MS. */
const RESPAWN_MS = 1000;
const MAX_RESPAWN_MS = 30_000;

function childModule(): string {
  // Under tsx the sources run as .ts; built, as .js beside this file.
  const ts = fileURLToPath(new URL("./group-describer-child.ts", import.meta.url));
  return import.meta.url.endsWith(".ts") && existsSync(ts) ? ts : fileURLToPath(new URL("./group-describer-child.js", import.meta.url));
}

export class GroupDescriber {
  readonly #config: KafkaConfig;
  readonly #clientId: string;
  readonly #logger: Logger;
  #child: ChildProcess | null = null;
  #startedAt = 0;
  #respawnMs = RESPAWN_MS;
  #nextId = 0;
  readonly #pending = new Map<number, { resolve(g: DescriberReply): void; timer: NodeJS.Timeout }>();
  #closed = false;

  constructor(config: KafkaConfig, options: { clientId?: string; logger: Logger }) {
    this.#config = config;
    this.#clientId = options.clientId ?? `${config.clientId}-describer`;
    this.#logger = options.logger.child({ component: "group-describer" });
  }

  /** The group's members and their partitions of `topic`; null when the group has no members (or does not exist). */
  async describe(groupId: string, topic: string, timeoutMs = 3000): Promise<GroupDescription | null> {
    const reply = await this.#ask(groupId, timeoutMs);
    if ("error" in reply) throw Object.assign(new Error(`could not describe group ${groupId}: ${reply.error.message}`), { code: reply.error.code });
    const group = reply.group;
    if (!group || group.members.length === 0) return null;
    return {
      state: group.state,
      type: group.type === 1 ? "consumer" : group.type === 2 ? "classic" : "unknown",
      members: group.members.map((m) => ({
        clientId: m.clientId,
        partitions: (m.assignment?.topicPartitions ?? [])
          .filter((tp) => tp.topic === topic)
          .map((tp) => tp.partition)
          .sort((a, b) => a - b),
      })),
    };
  }

  #ask(groupId: string, timeoutMs: number): Promise<DescriberReply> {
    if (this.#closed) return Promise.reject(new Error("the group describer is closed"));
    const child = this.#ensureChild();
    if (!child) return Promise.reject(new Error("the group description process is restarting; try again"));
    const id = ++this.#nextId;
    return new Promise<DescriberReply>((resolve) => {
      // A little past librdkafka's own timeout: its answer (even a timeout) comes first.
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve({ id, error: { message: `no answer within ${timeoutMs} ms` } });
      }, timeoutMs + 1000);
      this.#pending.set(id, { resolve, timer });
      child.send({ kind: "describe", id, groupId, timeoutMs } satisfies DescriberRequest);
    });
  }

  #ensureChild(): ChildProcess | null {
    if (this.#child) return this.#child;
    const now = Date.now();
    if (now - this.#startedAt < this.#respawnMs) return null;
    this.#startedAt = now;
    const child = fork(childModule(), [], { execArgv: process.execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "advanced" });
    child.on("message", (reply: DescriberReply) => {
      if (!("error" in reply)) this.#respawnMs = RESPAWN_MS;
      const p = this.#pending.get(reply.id);
      if (!p) return;
      clearTimeout(p.timer);
      this.#pending.delete(reply.id);
      p.resolve(reply);
    });
    child.on("exit", (code, signal) => {
      if (this.#child === child) this.#child = null;
      // Died again before it answered: the next start waits longer.
      this.#respawnMs = Math.min(this.#respawnMs * 2, MAX_RESPAWN_MS);
      if (!this.#closed) this.#logger.warn({ code, signal }, "the group description process ended; it is started again for the next call");
      for (const [id, p] of this.#pending) {
        clearTimeout(p.timer);
        p.resolve({ id, error: { message: `the group description process ended (${signal ?? `code ${code}`})` } });
      }
      this.#pending.clear();
    });
    child.on("error", (err) => this.#logger.warn({ err }, "the group description process failed"));
    child.send({ kind: "init", config: this.#config, clientId: this.#clientId } satisfies DescriberRequest);
    // It must not hold the parent's event loop open.
    child.unref();
    child.channel?.unref();
    this.#child = child;
    return child;
  }

  close(): void {
    this.#closed = true;
    const child = this.#child;
    this.#child = null;
    if (child && child.exitCode === null) child.kill("SIGTERM");
  }
}
