/**
 * A flooding tenant: a second tenant held to a small requests-per-minute quota (the keys
 * file's) sends turns as fast as the gateways let it, from a few senders spread over the
 * replicas. Each 429 must carry Retry-After, which the sender then waits, as an OpenAI SDK
 * does: it floods at its quota. It only counts what it was answered; its turns are not the
 * accounting's (the clients' turns must go on as if it were not there).
 */
import { FLOOD_API_KEY, type Cluster } from "./cluster.js";

export interface FloodTally {
  readonly requestsPerMinute: number;
  /** 202s. */
  accepted: number;
  /** 429s, and of them those with a Retry-After. */
  refused: number;
  refusedWithRetryAfter: number;
  /** Any other answer (or none: a replica killed under the POST). */
  other: number;
  /** How long the flood ran, ms. */
  ms: number;
}

const SENDERS = 4;

export async function flood(options: { cluster: Cluster; requestsPerMinute: number; stop: AbortSignal }): Promise<FloodTally> {
  const { cluster, stop } = options;
  const tally: FloodTally = { requestsPerMinute: options.requestsPerMinute, accepted: 0, refused: 0, refusedWithRetryAfter: 0, other: 0, ms: 0 };
  if (options.requestsPerMinute <= 0) return tally;
  const began = Date.now();
  const sender = async (k: number) => {
    let at = k;
    for (let n = 1; !stop.aborted; n++) {
      let waitMs = 0;
      try {
        const res = await fetch(`${cluster.gatewayUrl(at)}/v1/conversations/flood${k}-${n}/messages`, {
          method: "POST",
          headers: { authorization: `Bearer ${FLOOD_API_KEY}`, "content-type": "application/json" },
          body: JSON.stringify({ content: `flood ${k}.${n}` }),
          signal: AbortSignal.any([stop, AbortSignal.timeout(15_000)]),
        });
        await res.body?.cancel().catch(() => {});
        if (res.status === 202) tally.accepted++;
        else if (res.status === 429) {
          tally.refused++;
          const retryAfter = Number(res.headers.get("retry-after"));
          if (retryAfter > 0) tally.refusedWithRetryAfter++;
          waitMs = 1000 * (retryAfter > 0 ? retryAfter : 1);
        } else {
          tally.other++;
          waitMs = 1000;
        }
      } catch {
        if (stop.aborted) break;
        tally.other++;
        at++; // the replica is gone: the next one
        waitMs = 200;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        function done() {
          clearTimeout(timer);
          stop.removeEventListener("abort", done);
          resolve();
        }
        stop.addEventListener("abort", done, { once: true });
      });
    }
  };
  await Promise.all(Array.from({ length: SENDERS }, (_, k) => sender(k)));
  tally.ms = Date.now() - began;
  return tally;
}
