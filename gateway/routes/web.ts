/**
 * The web chat page at "/": one self-contained HTML file (inline script and style, no
 * external URLs), read once at start. It holds no secret; the page asks for an API key
 * and keeps it in the browser's localStorage.
 */
import { readFileSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import type { Logger } from "../../platform/logger.js";
import { notFound } from "../errors.js";

/** gateway/web/index.html beside this module (tsx) or, from dist/gateway/routes, in the source tree. */
const CANDIDATES = ["../web/index.html", "../../../gateway/web/index.html"];

export function loadWebPage(): string | null {
  for (const candidate of CANDIDATES) {
    try {
      return readFileSync(new URL(candidate, import.meta.url), "utf8");
    } catch {
      // try the next place
    }
  }
  return null;
}

/**
 * A gateway packaged without its page still serves the API (the page is the lesser part):
 * it says so in the log at start and answers 404 at "/".
 */
export function registerWebRoutes(app: FastifyInstance, logger: Logger): void {
  const page = loadWebPage();
  const open = { config: { public: true } };
  if (page === null) {
    logger.error({ looked_in: CANDIDATES, from: import.meta.url }, "the web page gateway/web/index.html is missing from this build; / answers 404");
    app.get("/", open, async () => {
      throw notFound("the web page is not installed in this build of the gateway (gateway/web/index.html)");
    });
    return;
  }
  app.get("/", open, async (_request, reply) =>
    reply
      .header("content-type", "text/html; charset=utf-8")
      .header("cache-control", "no-cache")
      // The page needs nothing from elsewhere; say so, so an injected script could not call out.
      .header(
        "content-security-policy",
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'",
      )
      .header("x-content-type-options", "nosniff")
      .send(page),
  );
  app.get("/favicon.ico", open, async (_request, reply) => reply.code(204).send());
}
