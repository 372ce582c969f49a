/**
 * A sticky partition assigner for kafkajs (bench-only, a proposal for platform/kafka.ts).
 * kafkajs only speaks the eager protocol, and its RoundRobinAssigner deals partitions out
 * afresh on every rebalance, so adding one worker to three moves 9 of 12 partitions. This
 * one keeps every member's partitions where it can and moves only what balance requires
 * (3 of 12 when a fourth worker joins): with turns that do not block the consumer (the
 * decoupled pattern in kafka-clients.ts), partitions that keep their owner keep running.
 *
 * Each member sends the partitions it holds in its join metadata (userData, JSON); the
 * group leader keeps them, up to a balanced share, and hands out the rest.
 */
import kafkajs, { type PartitionAssigner } from "kafkajs";

const { AssignerProtocol } = kafkajs;

export function stickyAssigner(held: () => readonly number[]): PartitionAssigner {
  return ({ cluster }) => ({
    name: "BenchStickyAssigner",
    version: 1,
    async assign({ members, topics }) {
      const topic = topics[0]!;
      const partitions = cluster.findTopicPartitionMetadata(topic).map((m) => m.partitionId).sort((a, b) => a - b);
      const previous = new Map<string, number[]>(
        members.map((m) => {
          const userData = AssignerProtocol.MemberMetadata.decode(m.memberMetadata)?.userData;
          let held: number[] = [];
          try {
            held = userData && userData.length ? (JSON.parse(userData.toString()) as number[]) : [];
          } catch {
            held = [];
          }
          return [m.memberId, held];
        }),
      );
      // Members that held more get the larger shares, so fewer partitions move.
      const order = [...previous.keys()].sort((a, b) => previous.get(b)!.length - previous.get(a)!.length || a.localeCompare(b));
      const base = Math.floor(partitions.length / order.length);
      const extra = partitions.length % order.length;
      const quota = new Map(order.map((id, i) => [id, base + (i < extra ? 1 : 0)]));
      const assignment = new Map<string, number[]>(order.map((id) => [id, []]));
      const taken = new Set<number>();
      for (const id of order) {
        for (const p of previous.get(id)!) {
          if (taken.has(p) || !partitions.includes(p) || assignment.get(id)!.length >= quota.get(id)!) continue;
          assignment.get(id)!.push(p);
          taken.add(p);
        }
      }
      for (const p of partitions) {
        if (taken.has(p)) continue;
        const id = order.find((m) => assignment.get(m)!.length < quota.get(m)!)!;
        assignment.get(id)!.push(p);
        taken.add(p);
      }
      return order.map((memberId) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: { [topic]: assignment.get(memberId)! }, userData: Buffer.alloc(0) }),
      }));
    },
    protocol({ topics }) {
      return {
        name: "BenchStickyAssigner",
        metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.from(JSON.stringify(held())) }),
      };
    },
  });
}
