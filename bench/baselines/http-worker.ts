/**
 * The REST pattern this design replaces: one worker answering a plain HTTP call, streaming
 * the reply as it is generated, with no Kafka at all. Bench-only; it runs the worker's own
 * model loading, slot pool and generator (see in-process.ts), so the only difference from
 * the in-process baseline is an HTTP hop, and from the Kafka route the bus.
 *
 *   POST /generate {"conversation_id", "messages": [...], "max_tokens"}
 *   → 200, newline-delimited JSON: {"text": "..."} per generated chunk, written at once,
 *     then {"final": {completion_tokens, prompt_tokens, cached_prompt_tokens, time_to_first_token_ms}}
 *
 * Env: MODEL, WORKER_SLOTS (4), BENCH_HTTP_PORT.
 */
import http from "node:http";
import type { ChatMessage } from "../../worker/generator.js";
import { loadInProcess } from "./in-process.js";

const model = await loadInProcess(process.env.MODEL!, Number(process.env.WORKER_SLOTS ?? "4"));

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/readyz") {
    res.writeHead(200).end("ok");
    return;
  }
  if (req.method !== "POST" || req.url !== "/generate") {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const body = JSON.parse(Buffer.concat(chunks).toString()) as { conversation_id: string; messages: ChatMessage[]; max_tokens: number };
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    model
      .generate(body.conversation_id, body.messages, body.max_tokens, (text) => res.write(`${JSON.stringify({ text })}\n`))
      .then(
        (r) =>
          res.end(
            `${JSON.stringify({
              final: {
                completion_tokens: r.completionTokens,
                prompt_tokens: r.promptTokens,
                cached_prompt_tokens: r.cachedPromptTokens,
                time_to_first_token_ms: r.timeToFirstTokenMs,
              },
            })}\n`,
          ),
        (err: Error) => res.end(`${JSON.stringify({ error: err.message })}\n`),
      );
  });
});
server.listen(Number(process.env.BENCH_HTTP_PORT), "127.0.0.1");

const stop = () => {
  server.close();
  void model.dispose().then(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
