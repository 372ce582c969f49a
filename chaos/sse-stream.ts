/** An incremental Server-Sent Events parser: feed it chunks, get whole messages. */

export interface SseMessage {
  id: string | undefined;
  event: string | undefined;
  data: string;
}

export class SseParser {
  #buffer = "";
  readonly #decoder = new TextDecoder();

  /** Adds bytes; returns the messages they complete (comments and keepalives are skipped). */
  push(chunk: Uint8Array): SseMessage[] {
    this.#buffer += this.#decoder.decode(chunk, { stream: true });
    const messages: SseMessage[] = [];
    for (let end = this.#buffer.indexOf("\n\n"); end >= 0; end = this.#buffer.indexOf("\n\n")) {
      const block = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 2);
      let id: string | undefined;
      let event: string | undefined;
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line === "" || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") id = value;
        else if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
      if (data.length > 0) messages.push({ id, event, data: data.join("\n") });
    }
    return messages;
  }
}
