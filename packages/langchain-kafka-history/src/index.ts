export { KafkaChatMessageHistory, type KafkaChatMessageHistoryInput, type ReadOptions } from "./kafka-chat-message-history.js";
export { KafkaChatHistoryError } from "./errors.js";
export { toHistoryInput, fromHistoryRecord, type HistoryRole, type HistoryInput, type HistoryRecord } from "./message-mapping.js";
