/**
 * The child process of group-describer.ts: one librdkafka admin client that describes
 * consumer groups on request, over IPC. It lives apart because the binding's describeGroups
 * can crash its process while the brokers are unreachable
 * (confluentinc/confluent-kafka-javascript#531): here that ends this process only.
 */
import type { KafkaConfig } from "../../contracts/config/shared.js";
import { librdkafkaConnection } from "./connection.js";
import { rdkafka, type NativeAdmin, type NativeError, type NativeGroupDescription } from "./native.js";

export type DescriberRequest = { kind: "init"; config: KafkaConfig; clientId: string } | { kind: "describe"; id: number; groupId: string; timeoutMs: number };
export type DescriberReply = { id: number; group: NativeGroupDescription | null } | { id: number; error: { message: string; code?: number } };

let admin: NativeAdmin | null = null;

process.on("message", (message: DescriberRequest) => {
  if (message.kind === "init") {
    admin = rdkafka().AdminClient.create({ ...librdkafkaConnection(message.config, message.clientId) });
    return;
  }
  const reply = (r: DescriberReply) => process.send?.(r);
  if (!admin) {
    reply({ id: message.id, error: { message: "the describer is not initialized" } });
    return;
  }
  try {
    admin.describeGroups([message.groupId], { timeout: message.timeoutMs }, (err: NativeError | null, result) => {
      if (err) reply({ id: message.id, error: { message: err.message, code: err.code } });
      else {
        const group = result.groups.find((g) => g.groupId === message.groupId) ?? null;
        if (group?.error) reply({ id: message.id, error: { message: group.error.message, code: group.error.code } });
        else
          reply({
            id: message.id,
            group: group && {
              ...group,
              members: group.members.map((m) => ({ clientId: m.clientId, memberId: m.memberId, clientHost: m.clientHost, assignment: m.assignment ?? null })),
            },
          });
      }
    });
  } catch (err) {
    reply({ id: message.id, error: { message: (err as Error).message } });
  }
});

// The parent gone: nothing left to answer.
process.on("disconnect", () => process.exit(0));
