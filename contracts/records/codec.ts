/**
 * How a record's value becomes bytes and back. Every topic's values are UTF-8 JSON checked
 * against the topic's zod schema on read; a value that fails comes back with a reason, never
 * an exception, because a reader's answer to a bad record is to dead-letter or skip it, and
 * the reason is logged and put in a dead-letter header, so it must never quote a client's
 * text.
 */
import { z } from "zod";

export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/**
 * A decode reason fit for a log line: without a quoted value (", received 'x'"), which may be
 * a client's text. zod 4's messages name the received type, never the value (zod 3's enum
 * and literal messages quoted it), so this is a guard for messages of that form. The dead
 * letter keeps the reason whole.
 */
export function loggableReason(reason: string): string {
  return reason.replace(/, received '[^']*'/g, "");
}

/**
 * zod's own messages, except that a missing field says so: zod 4 reports one as "Invalid
 * input: expected string, received undefined". Give it to every parse whose issues are
 * shown to someone (`schema.safeParse(value, { error: requiredMessage })`); a schema's own
 * message, where it has one, still comes first.
 */
export const requiredMessage: z.core.$ZodErrorMap = (issue) =>
  issue.input === undefined && (issue.code === "invalid_type" || issue.code === "invalid_value") ? "is required" : undefined;

/** Formats zod issues as "path: message; path: message". */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.map(String).join(".") : "(root)"}: ${i.message}`).join("; ");
}

/**
 * Decodes a record value (bytes) as UTF-8 JSON and validates it. Never throws: a record
 * that cannot be used comes back with a reason fit for a dead-letter header.
 */
export function decodeRecord<T>(schema: z.ZodType<T>, bytes: Buffer | null): ParseResult<T> {
  if (bytes === null) return { ok: false, reason: "record has no value" };
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return { ok: false, reason: "value is not valid UTF-8" };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    // Some JSON.parse messages quote the start of the input ("Unexpected token 'p', "plain
    // text"... is not valid JSON"), and reasons are logged: say where, never what.
    const at = /at position (\d+)/.exec((err as Error).message)?.[1];
    return { ok: false, reason: at === undefined ? "value is not JSON" : `value is not JSON (error at character ${at})` };
  }
  const parsed = schema.safeParse(json, { error: requiredMessage });
  if (!parsed.success) return { ok: false, reason: `schema: ${describeIssues(parsed.error)}` };
  return { ok: true, value: parsed.data };
}

export function encodeRecord(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}
