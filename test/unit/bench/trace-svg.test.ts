import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { REPO_ROOT } from "../../../testkit/services.js";
import { formatMs, renderTraceSvg, tickStepMs, traceRows, type TracePicture, type TraceSpan } from "../../../bench/lib/trace-svg.js";

const TRACE = "0af7651916cd43dd8448eb211c80319c";
const T0 = 1_700_000_000_000_000; // µs since the epoch

/** A span of the synthetic trace, its times in ms from T0. */
function span(spanId: string, parentSpanId: string | null, name: string, instance: string, startMs: number, endMs: number, attributes = {}): TraceSpan {
  const service = instance === "gw" ? "kafka-llm-gateway" : "kafka-llm-worker";
  return { traceId: TRACE, spanId, parentSpanId, name, service, instance, startUs: T0 + startMs * 1000, endUs: T0 + endMs * 1000, attributes };
}

/**
 * A takeover in miniature: the call (its parent the caller's span, outside the trace), the
 * produce, worker-a's queue wait and two phases whose parents (its run, its chat span) never
 * arrived, worker-b's whole run, four polls and the read of the events.
 */
const SPANS: TraceSpan[] = [
  span("g3", "g1", "receive chat.events", "gw", 12, 95, { "kafka_llm.events": 7 }),
  span("wb2", "g2", "process chat.requests", "worker-b", 60, 90, { "kafka_llm.outcome": "completed" }),
  span("wa2", "lost-run", "load conversation", "worker-a", 21, 22),
  span("g1", "caller", "POST /v1/responses", "gw", 0, 100, { "http.response.status_code": 200 }),
  span("wa1", "g2", "queue wait", "worker-a", 5, 20),
  span("wb4", "wb3", "generate", "worker-b", 70, 88),
  span("wa3", "lost-chat", "prompt evaluation", "worker-a", 23, 30),
  span("wb3", "wb2", 'chat <model> & "friends"', "worker-b", 62, 88, { "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 1500 }),
  span("wb1", "g2", "queue wait", "worker-b", 5, 60),
  span("g2", "g1", "send chat.requests", "gw", 10, 12),
  ...[30, 40, 50, 61].map((at, i) =>
    span(`p${i}`, "g2", "poll response", "gw", at, at + 1, { "kafka_llm.response.status": i === 3 ? "completed" : "in_progress" }),
  ),
];

describe("the trace waterfall (bench/lib/trace-svg.ts)", () => {
  it("lists spans in tree order, each instance's siblings together, a killed run's orphans under a synthesized row", () => {
    const rows = traceRows(SPANS, { "worker-a": "worker-a's run (killed)" });
    assert.deepEqual(
      rows.map((r) => [r.depth, r.kind, r.name, r.instance]),
      [
        [0, "span", "POST /v1/responses", "gw"],
        [1, "span", "send chat.requests", "gw"],
        [2, "span", "queue wait", "worker-a"],
        [2, "missing", "worker-a's run (killed)", "worker-a"],
        [3, "span", "load conversation", "worker-a"],
        [3, "span", "prompt evaluation", "worker-a"],
        [2, "span", "queue wait", "worker-b"],
        [2, "span", "process chat.requests", "worker-b"],
        [3, "span", 'chat <model> & "friends"', "worker-b"],
        [4, "span", "generate", "worker-b"],
        [2, "repeats", "poll response", "gw"],
        [1, "span", "receive chat.events", "gw"],
      ],
    );
    const missing = rows[3]!;
    assert.equal(missing.startUs, T0 + 21_000, "the synthesized row starts with its first orphan");
    assert.equal(missing.endUs, T0 + 30_000, "and ends with its last");
    assert.equal(rows[10]!.spans.length, 4, "the polls share a row");
    // Without a label, the synthesized row says what it is; two polls keep their own rows.
    const fewer = traceRows(SPANS.filter((s) => s.spanId !== "p2" && s.spanId !== "p3"));
    assert.equal(fewer.find((r) => r.kind === "missing")!.name, "worker-a: spans whose parent never arrived");
    assert.equal(fewer.filter((r) => r.name === "poll response" && r.kind === "span").length, 2);
  });

  it("escapes text and draws a self-contained SVG", () => {
    const svg = renderTraceSvg(SPANS, { title: "Tom & Jerry's <trace>", traces: [{ traceId: TRACE, title: 'a "turn"' }] });
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="1000" /);
    assert.ok(svg.includes("Tom &amp; Jerry&#39;s &lt;trace&gt;"));
    assert.ok(svg.includes("chat &lt;model&gt; &amp; &quot;friends&quot;"));
    assert.ok(svg.includes("a &quot;turn&quot; — 100 ms in all"));
    assert.doesNotMatch(svg, /&(?!(amp|lt|gt|quot|#39);)/, "every & starts an entity");
    assert.doesNotMatch(svg, /<model>|<trace>/);
    // Nothing to fetch or run: no script, no link, no stylesheet, no web font.
    assert.doesNotMatch(svg, /<script|href|<style|@import|@font-face|url\((?!#)/i);
    assert.equal((svg.match(/http/g) ?? []).length, 1, "only the namespace");
    // The key attributes beside their bars.
    assert.ok(svg.includes("26 ms  ·  12 in → 1,500 out tokens"));
    assert.ok(svg.includes("30 ms  ·  completed"));
    assert.ok(svg.includes("every 10 ms  ·  last: completed"));
    assert.ok(svg.includes("≥ 9.0 ms  ·  drawn from its finished children"));
  });

  it("puts every bar on the panel's time axis", () => {
    const svg = renderTraceSvg(SPANS, {
      markers: [
        { atUs: T0 + 25_000, label: "worker-a killed" },
        { atUs: T0 + 500_000, label: "later" },
      ],
    });
    // 1000 px wide: the chart runs from x 316 to 784 (468 px for the trace's 100 ms).
    assert.match(svg, /<rect x="316" y="[\d.]+" width="468" height="12"/, "the call spans the whole axis");
    assert.match(svg, /<rect x="372.2" y="[\d.]+" width="388.4" height="12"/, "receive chat.events: 12 to 95 ms");
    for (const [ms, x] of [
      [0, 316],
      [20, 409.6],
      [100, 784],
    ] as const)
      assert.ok(svg.includes(`<line x1="${x}" `) && svg.includes(`>${ms} ms</text>`), `the ${ms} ms tick at ${x}`);
    assert.ok(svg.includes(`<line x1="433" `) && svg.includes("worker-a killed at 25 ms"), "a marker at 25 ms");
    assert.ok(!svg.includes("later"), "a marker outside the trace is left out");
  });

  it("picks round tick steps and formats durations in ms", () => {
    assert.equal(tickStepMs(100_000), 20);
    assert.equal(tickStepMs(552_000), 100);
    assert.equal(tickStepMs(14_492_000), 2000);
    assert.equal(formatMs(330), "0.33 ms");
    assert.equal(formatMs(3_640), "3.6 ms");
    assert.equal(formatMs(11_424_400), "11,424 ms");
  });

  it("made docs/images/trace-takeover.svg from docs/images/trace-takeover.json (npm run trace-picture -- --rerender)", () => {
    const base = path.join(REPO_ROOT, "docs", "images", "trace-takeover");
    const picture = JSON.parse(readFileSync(`${base}.json`, "utf8")) as TracePicture;
    assert.equal(renderTraceSvg(picture.spans, picture.options), readFileSync(`${base}.svg`, "utf8"));
  });
});
