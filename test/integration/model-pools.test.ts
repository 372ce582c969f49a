/**
 * Several models behind one gateway (contracts/pools.ts): two pools on two real GGUFs,
 * stories260K in the default pool and a random-weight llama (bench/lib/gguf-random.ts) in
 * pool `tiny`, each its own worker, request topic and consumer group. The gateway learns
 * the pools from chat.models, routes each request by its `model` (the start event names the
 * pool and model that ran it), answers 404 with the list for a model nobody serves, and a
 * conversation that changes model keeps one history and its memory, for each of two tenants.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { SHAPES, writeRandomGguf, writeRandomLora } from "../../bench/lib/gguf-random.js";
import { poolTopics } from "../../contracts/pools.js";
import { apiClient, eventually, readEvents, stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";
import { chatEvents } from "../helpers/sse.js";

const KEY_A = "pools-tenant-a-key-0001";
const KEY_B = "pools-tenant-b-key-0002";
const STORIES = "stories-260k";
const TINY = "tiny-random";
const LORA = "tiny-support";

describe("model pools: two models behind one gateway", { timeout: 300_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let stories: Service;
  let tiny: Service;
  const prefix = uniquePrefix("pools");
  const dir = mkdtempSync(path.join(os.tmpdir(), "pools-"));
  const a = () => apiClient(gateway.baseUrl, KEY_A);
  const b = () => apiClient(gateway.baseUrl, KEY_B);

  before(async () => {
    kafka = await useKafka();
    const common = stackEnv(kafka, prefix);
    const tinyModel = path.join(dir, "tiny.gguf");
    writeRandomGguf({ shape: SHAPES.tiny!, type: "q8_0", path: tinyModel, seed: 11 });
    const tinyLora = path.join(dir, "tiny-lora.gguf");
    writeRandomLora({ shape: SHAPES.tiny!, rank: 4, path: tinyLora, seed: 12 });
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `a:${KEY_A},b:${KEY_B}`, MODEL_NAME: STORIES });
    [stories, tiny] = await Promise.all([
      startWorker(common, { DEFAULT_MAX_TOKENS: "4", MEMORY_MAX_TOKENS: "4000" }, "worker-stories"),
      startWorker(
        common,
        {
          WORKER_POOL: "tiny",
          MODEL_NAME: TINY,
          MODEL: tinyModel,
          MODEL_ADAPTERS: `${LORA}=${tinyLora}`,
          CONTEXT_SIZE: "512",
          DEFAULT_MAX_TOKENS: "4",
          MEMORY_MAX_TOKENS: "400",
        },
        "worker-tiny",
      ),
    ]);
  });

  after(async () => {
    await gateway?.stop();
    await Promise.all([stories?.stop(), tiny?.stop()]);
    await kafka?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A native turn, followed to its final; the start event says which pool and model ran it. */
  async function turn(api: ReturnType<typeof apiClient>, key: string, id: string, content: string, model?: string) {
    const res = await api("POST", `/v1/conversations/${id}/messages`, { content, max_tokens: 3, ...(model && { model }) });
    assert.equal(res.status, 202, res.text);
    const events = chatEvents(await readEvents(gateway.baseUrl + res.body.events_url, key));
    assert.equal(events.at(-1)!.type, "final", JSON.stringify(events.at(-1)));
    const start = events.find((e) => e.type === "start") as { pool?: string; model?: string; worker_id: string };
    return start;
  }

  const messages = async (api: ReturnType<typeof apiClient>, id: string) =>
    ((await api("GET", `/v1/conversations/${id}/messages?from=beginning`)).body.messages as Array<{ role: string; content: string }>).map(
      (m) => m.role + ":" + m.content,
    );

  it("lists the pools' models as chat.models declares them, and answers 404 with the list for another", async () => {
    const listed = await eventually(
      async () => {
        const res = await a()("GET", "/v1/models");
        const ids = (res.body.data as Array<{ id: string }>).map((m) => m.id).sort();
        return ids.length === 3 ? ids : undefined;
      },
      60_000,
      "both pools listed",
    );
    assert.deepEqual(listed, [STORIES, LORA, TINY].sort());
    assert.equal((await a()("GET", `/v1/models/${TINY}`)).body.id, TINY);
    assert.equal((await a()("GET", `/v1/models/${LORA}`)).body.parent, TINY, "an adapter names its base model");

    const unknown = await a()("POST", "/v1/chat/completions", { model: "gpt-4o", messages: [{ role: "user", content: "Hi" }] });
    assert.equal(unknown.status, 404, unknown.text);
    assert.equal(unknown.body.error.param, "model");
    assert.match(unknown.body.error.message, new RegExp(`no model gpt-4o.*: ${[STORIES, LORA, TINY].sort().join(", ")}$`));
    const native = await a()("POST", "/v1/conversations/c-unknown/messages", { content: "Hi", model: "gpt-4o" });
    assert.equal(native.status, 404, native.text);
  });

  it("sends each request to the pool its model names, through each API", async () => {
    for (const [model, pool, worker] of [
      [STORIES, "default", "worker-stories"],
      [TINY, "tiny", "worker-tiny"],
    ] as const) {
      const start = await turn(a(), KEY_A, `route-${pool}`, "Once upon a time", model);
      assert.deepEqual([start.pool, start.model, start.worker_id], [pool, model, worker]);
      const completion = await a()("POST", "/v1/chat/completions", { model, messages: [{ role: "user", content: "Hello" }], max_tokens: 3 });
      assert.equal(completion.status, 200, completion.text);
      assert.equal(completion.body.model, model);
      const response = await a()("POST", "/v1/responses", { model, input: "Hello", max_output_tokens: 3 });
      assert.equal(response.status, 200, response.text);
      assert.equal(response.body.model, model);
    }
    // The pools' own topics carry their requests.
    assert.notEqual(poolTopics(prefix, "tiny").requests, poolTopics(prefix, "default").requests);
  });

  it("runs an adapter's requests in its pool on the adapter's context: the same greedy prompt answers otherwise than the base model", async () => {
    const greedy = async (model: string) => {
      const res = await a()("POST", "/v1/chat/completions", {
        model,
        messages: [{ role: "user", content: "Once upon a time" }],
        max_tokens: 8,
        temperature: 0,
      });
      assert.equal(res.status, 200, res.text);
      return res.body.choices[0].message.content as string;
    };
    const start = await turn(a(), KEY_A, "adapter-turn", "Hello", LORA);
    assert.deepEqual([start.pool, start.model, start.worker_id], ["tiny", LORA, "worker-tiny"]);
    const [base, adapted, again] = [await greedy(TINY), await greedy(LORA), await greedy(LORA)];
    assert.equal(adapted, again, "the adapter's greedy reply is reproducible");
    assert.notEqual(adapted, base, "the adapter changes the reply: it runs on the adapter's context, not the base model's");
  });

  it("keeps one history and the memory of a conversation that changes model, for each tenant on its own", async () => {
    const id = "switching";
    assert.equal((await turn(a(), KEY_A, id, "First in stories.", STORIES)).pool, "default");
    // Tenant b's conversation of the same id starts in the other pool and stays apart.
    assert.equal((await turn(b(), KEY_B, id, "Only b, in tiny.", TINY)).pool, "tiny");
    assert.equal((await turn(a(), KEY_A, id, "Second in tiny.", TINY)).pool, "tiny");
    // No model named: it stays in the pool it is in now.
    assert.equal((await turn(a(), KEY_A, id, "Third, no model.")).pool, "tiny");
    assert.equal((await turn(a(), KEY_A, id, "Fourth back in stories.", STORIES)).pool, "default");

    const history = (await messages(a(), id)).filter((m) => m.startsWith("user:"));
    assert.deepEqual(history, ["user:First in stories.", "user:Second in tiny.", "user:Third, no model.", "user:Fourth back in stories."]);
    // The memory the stories pool holds now has every turn, including those the tiny pool ran.
    const memory = await a()("GET", `/v1/conversations/${id}/memory`);
    assert.equal(memory.status, 200, memory.text);
    const remembered = (memory.body.messages as Array<{ role: string; content: string }>).filter((m) => m.role === "user").map((m) => m.content);
    assert.deepEqual(remembered, ["First in stories.", "Second in tiny.", "Third, no model.", "Fourth back in stories."]);
    const info = await a()("GET", `/v1/conversations/${id}`);
    assert.equal(info.body.turns, 4);

    assert.deepEqual(
      (await messages(b(), id)).filter((m) => m.startsWith("user:")),
      ["user:Only b, in tiny."],
    );
  });
});
