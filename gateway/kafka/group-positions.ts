/**
 * Where a consumer group stands on a topic: each partition's log start and end, and the
 * group's committed offset where it has one. The lag exporter turns it into lag, the queue
 * watch into a waiting request's place; both ask Kafka this way, within one time budget
 * per call.
 */
import type { KafkaAdmin, PartitionOffsets } from "../../platform/kafka/admin.js";
import { withDeadline } from "./deadline.js";

export interface GroupPositions {
  readonly ends: PartitionOffsets[];
  /** The next offset the group reads, by partition; absent where it has committed none. */
  readonly committed: Map<number, number>;
}

/** The topic's offsets, then the group's commits on its partitions; each call bounded by `budgetMs`. */
export async function groupPositions(
  admin: Pick<KafkaAdmin, "offsets" | "committed">,
  topic: string,
  groupId: string,
  budgetMs: number,
): Promise<GroupPositions> {
  const ends = await withDeadline(admin.offsets(topic, budgetMs), budgetMs, `${topic} offsets`);
  const committed = await withDeadline(
    admin.committed(
      groupId,
      topic,
      ends.map((e) => e.partition),
      budgetMs,
    ),
    budgetMs,
    "committed offsets",
  );
  return { ends, committed };
}
