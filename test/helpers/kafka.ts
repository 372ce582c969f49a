/** The Kafka helpers for tests: the testkit's (shared with bench/ and chaos/). */
export {
  forEachRecord,
  kafkaConfigFor,
  produceRecords,
  readTopic,
  topicEnds,
  uniquePrefix,
  useKafka,
  type ReadRecord,
  type TestKafka,
} from "../../testkit/kafka.js";
