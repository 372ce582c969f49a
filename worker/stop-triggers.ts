/**
 * Stop texts as node-llama-cpp stop triggers: the one place a list of stop strings (a
 * request's `stop`, or a model's turn markers from config) becomes `customStopTriggers`.
 * node-llama-cpp holds back text that may be the start of a trigger and drops the trigger
 * itself, so the reply ends just before the stop text.
 */
export function stopTriggers(...lists: ReadonlyArray<readonly string[] | undefined>): string[] | undefined {
  const all = [...new Set(lists.flatMap((l) => l ?? []).filter((s) => s.length > 0))];
  return all.length > 0 ? all : undefined;
}
