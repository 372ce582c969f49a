/**
 * The bounds the records enforce, in one place: the HTTP schemas, the worker and the docs
 * all read these.
 */
export const MAX_CONTENT_CHARS = 32_000;
/** Messages a stateless turn (OpenAI-style) may carry before its last one. */
export const MAX_CONTEXT_MESSAGES = 512;
/** Bounds of the OpenAI-style parameters (issue 16); documented in docs/gateway.md. */
export const MAX_STOP_SEQUENCES = 4;
export const MAX_STOP_CHARS = 256;
export const MAX_TOOLS = 128;
/** The most choices (n) one request may ask for; each takes a sequence of the owning worker. */
export const MAX_CHOICES = 4;
/** The most likely alternatives a request may ask for at each generated token (OpenAI's top_logprobs bound). */
export const MAX_TOP_LOGPROBS = 20;
/** Token logprobs one delta event carries at most: the worker flushes a delta at this many, so no event outgrows a record. */
export const MAX_DELTA_LOGPROBS = 64;
/** Items of a conversation that can be deleted (hidden from its history and dropped from its memory). */
export const MAX_HIDDEN_ITEMS = 1000;
/** Key-value pairs of a conversation's metadata (OpenAI's bound), and their lengths. */
export const MAX_METADATA_PAIRS = 16;
/** Messages one POST /history (an append request) may carry. */
export const MAX_APPEND_MESSAGES = 100;
