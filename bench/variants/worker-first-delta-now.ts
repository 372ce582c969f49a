/**
 * The real worker (worker/main.ts) with one change, to measure a proposed fix: the first
 * generated text of a turn is sent as a delta at once, and only later text is batched
 * every DELTA_FLUSH_MS. Today's DeltaBatcher holds the first text for DELTA_FLUSH_MS too,
 * which adds up to that much to every time to first token.
 */
import { DeltaBatcher } from "../../worker/delta-batcher.js";

const flushedOnce = new WeakSet<DeltaBatcher>();
const push = DeltaBatcher.prototype.push;
DeltaBatcher.prototype.push = function (this: DeltaBatcher, text: string): void {
  push.call(this, text);
  if (text && !flushedOnce.has(this)) {
    flushedOnce.add(this);
    this.flush();
  }
};

await import("../../worker/main.js");
