/**
 * The web chat page at "/" in headless Chromium (playwright-core, Debian's chromium)
 * against a real gateway, broker and worker: enter the key, open a conversation (the
 * greeting streams in), send a message, watch the reply stream in, press Stop and see the
 * stop reason, reload and find the history, then let a reply run to its end; and at a
 * phone's width, type a message and press Enter to start a conversation without "New
 * conversation", on a layout that fits the screen; the model list (GET /v1/models), whose
 * choice each turn names; and a long conversation shown whole
 * after a refresh, oldest first, its older messages loaded on demand.
 */
import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "../helpers/browser.js";
import { stackEnv, startGateway, startWorker } from "../helpers/gateway.js";
import { useKafka, uniquePrefix, type TestKafka } from "../helpers/kafka.js";
import type { Service } from "../helpers/services.js";

const KEY = "web-page-key-13579";
const GREETING = "Hello! Which story shall we write today?";

describe("web chat page in Chromium", { timeout: 180_000 }, () => {
  let kafka: TestKafka;
  let gateway: Service;
  let worker: Service;
  let browser: Browser;
  let page: Page;
  let shots: string;
  const prefix = uniquePrefix("gw-web");

  before(async () => {
    kafka = await useKafka();
    const common = stackEnv(kafka, prefix);
    gateway = await startGateway(common, { GATEWAY_API_KEYS: `web:${KEY}` });
    // Long replies, streamed in small deltas: there is time to see text arrive and press Stop.
    worker = await startWorker(common, { GREETING, DEFAULT_MAX_TOKENS: "1900", DELTA_FLUSH_MS: "10", MEMORY_MAX_TOKENS: "4000" });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
    page.on("pageerror", (err) => assert.fail(`page error: ${err.message}`));
    shots = await mkdtemp(path.join(os.tmpdir(), "kafka-llm-web-"));
  });

  after(async () => {
    await browser?.close();
    await gateway?.stop();
    await worker?.stop();
    await kafka?.stop();
  });

  const assistantText = (n: number) => page.locator(".message.assistant .text").nth(n).textContent();

  it("opens a conversation with the greeting once the key is entered", async () => {
    await page.goto(gateway.baseUrl);
    assert.equal(await page.title(), "kafka-llm chat");
    await page.fill("#api-key", KEY);
    await page.click("#new-conversation");
    await page.locator(".message.assistant .stop-reason").first().waitFor();
    assert.equal(await assistantText(0), GREETING);
    // The model list, from the gateway (one pool here: its MODEL_NAME).
    await page.locator("#model option").first().waitFor({ state: "attached" });
    assert.deepEqual(await page.locator("#model option").allTextContents(), ["kafka-llm"]);
    assert.equal(await page.locator("#conversations li").count(), 1);
  });

  it("streams a reply as it is generated, stops it on Stop and shows the stop reason", async (t) => {
    await page.fill("#input", "Tell me a very long story about a brave little cat.");
    await page.click("#send");
    // Streaming: text is on the page while the reply is still being generated.
    await page.waitForFunction(() => {
      const bubble = document.querySelectorAll(".message.assistant")[1];
      return bubble?.classList.contains("streaming") && (bubble.querySelector(".text")?.textContent ?? "").length > 20;
    });
    const partial = (await assistantText(1)) ?? "";
    assert.equal(await page.isEnabled("#stop"), true);
    await page.screenshot({ path: path.join(shots, "streaming.png") });
    t.diagnostic(`screenshot: ${path.join(shots, "streaming.png")}`);
    await page.click("#stop");
    const reason = page.locator(".message.assistant .stop-reason").nth(1);
    await reason.waitFor();
    assert.match((await reason.textContent()) ?? "", /stop reason: cancelled/);
    const stopped = (await assistantText(1)) ?? "";
    assert.ok(stopped.startsWith(partial), "the text seen while streaming is the beginning of the reply");
    assert.equal(await page.isEnabled("#stop"), false);
    assert.equal(await page.isEnabled("#send"), true);
    await page.screenshot({ path: path.join(shots, "stopped.png") });
  });

  it("reloads the history after a refresh", async () => {
    const before = await page.locator(".message .text").allTextContents();
    await page.reload();
    await page.locator(".message.user").first().waitFor();
    const after = await page.locator(".message .text").allTextContents();
    assert.deepEqual(after, before, "greeting, question and the partial reply come back from the server");
    assert.match((await page.locator("#conversations li .title").first().textContent()) ?? "", /Tell me a very long story/);
  });

  it("lets a reply run to its end, asked of the model chosen in the list", async () => {
    await page.fill("#input", "Now a short one.");
    const posted = page.waitForRequest((r) => r.method() === "POST" && r.url().endsWith("/messages"));
    await page.keyboard.press("Enter");
    assert.equal((JSON.parse((await posted).postData() ?? "{}") as { model?: string }).model, "kafka-llm", "the turn names the chosen model");
    const reason = page.locator(".message.assistant .stop-reason").nth(2);
    await reason.waitFor({ timeout: 60_000 });
    assert.match((await reason.textContent()) ?? "", /stop reason: (stop|length)/);
    assert.ok(((await assistantText(2)) ?? "").length > 0);
  });

  it("at a phone's width, typing and Enter start a conversation; the page fits the screen", async (t) => {
    // A fresh context: no conversation open, nothing in localStorage.
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    try {
      const phone = await context.newPage();
      phone.on("pageerror", (err) => assert.fail(`page error: ${err.message}`));
      await phone.goto(gateway.baseUrl);
      await phone.fill("#api-key", KEY);
      assert.equal(await phone.isEnabled("#input"), true, "the message box is usable before any conversation exists");
      await phone.fill("#input", "Tell me about a dog.");
      await phone.locator("#input").press("Enter");
      const reason = phone.locator(".message.assistant .stop-reason").first();
      await reason.waitFor({ timeout: 60_000 });
      assert.match((await reason.textContent()) ?? "", /stop reason: (stop|length)/);
      assert.deepEqual(await phone.locator(".message.user .text").allTextContents(), ["Tell me about a dog."]);
      assert.equal(await phone.locator(".message.assistant").count(), 1, "no greeting: the message comes first");
      assert.equal(await phone.locator("#conversations li").count(), 1);
      assert.match((await phone.locator("#conversations li .title").textContent()) ?? "", /Tell me about a dog/);
      const shot = path.join(shots, "phone.png");
      await phone.screenshot({ path: shot });
      t.diagnostic(`screenshot: ${shot}`);
      // The layout fits 390 px: nothing scrolls sideways, the chat has the full width, the
      // composer and its buttons are on screen.
      // (No named functions inside evaluate: tsx would wrap them in a helper the page lacks.)
      const layout = await phone.evaluate(() => ({
        scrollWidth: document.documentElement.scrollWidth,
        box: Object.fromEntries(
          ["messages", "input", "send", "stop"].map((id) => [
            id,
            document.getElementById(id)!.getBoundingClientRect().toJSON() as { width: number; top: number; right: number; bottom: number },
          ]),
        ),
      }));
      assert.ok(layout.scrollWidth <= 390, `no sideways scrolling (page is ${layout.scrollWidth}px wide)`);
      assert.ok(layout.box.messages!.width >= 380, `messages use the width (${layout.box.messages!.width}px)`);
      assert.ok(layout.box.input!.width >= 200, `the message box is wide enough to type in (${layout.box.input!.width}px)`);
      for (const id of ["input", "send", "stop"]) {
        const b = layout.box[id]!;
        assert.ok(b.right <= 390 && b.bottom <= 844 && b.top >= 0, `#${id} is on screen: ${JSON.stringify(b)}`);
      }
      // The conversation is the current one: a reload brings it back.
      await phone.reload();
      await phone.locator(".message.user").first().waitFor();
      assert.deepEqual(await phone.locator(".message.user .text").allTextContents(), ["Tell me about a dog."]);
    } finally {
      await context.close();
    }
  });

  it("shows a long conversation whole after a refresh, oldest first, loading older messages on demand", async () => {
    const id = `web-long-${Date.now()}`;
    const messages = Array.from({ length: 70 }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: `message ${i}` }));
    const res = await fetch(`${gateway.baseUrl}/v1/conversations/${id}/history`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ messages }),
    });
    assert.equal(res.status, 200, await res.text());
    const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
    try {
      const tab = await context.newPage();
      tab.on("pageerror", (err) => assert.fail(`page error: ${err.message}`));
      await tab.goto(gateway.baseUrl);
      await tab.evaluate(
        ([key, conversation]) => {
          localStorage.setItem("kafka-llm.key", key!);
          localStorage.setItem("kafka-llm.conversations", JSON.stringify([{ id: conversation, title: "long", created_at: Date.now() }]));
          localStorage.setItem("kafka-llm.current", conversation!);
        },
        [KEY, id],
      );
      await tab.reload();
      await tab.locator("#load-older").waitFor();
      const texts = () => tab.locator(".message .text").allTextContents();
      assert.deepEqual(
        await texts(),
        messages.slice(20).map((m) => m.content),
        "the newest 50, oldest first",
      );
      await tab.click("#load-older");
      await tab.locator("#load-older").waitFor({ state: "detached" });
      assert.deepEqual(
        await texts(),
        messages.map((m) => m.content),
        "the whole conversation once the older page is in",
      );
      assert.deepEqual(
        await tab.locator(".message").evaluateAll((nodes) => nodes.map((n) => n.className)),
        messages.map((m) => `message ${m.role}`),
      );
    } finally {
      await context.close();
    }
  });
});
