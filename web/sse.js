// Server-sent events over fetch(): EventSource cannot send an Authorization header, so the page reads
// the stream itself. SseParser follows the event-stream format (fields `event`, `data`, `id`,
// `retry`; comment lines start with ':'; an empty line dispatches); readSse reads one connection.

export class SseParser {
  /**
   * @param {(event: { type: string, data: string, id: string }) => void} onEvent
   * @param {(comment: string) => void} [onComment]
   */
  constructor(onEvent, onComment = () => {}) {
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.buffer = "";
    this.lastEventId = "";
    this.retry = null;
    this.resetEvent();
  }

  resetEvent() {
    this.type = "";
    this.data = [];
  }

  /** Feeds decoded text; complete lines are processed, a partial one is kept for the next chunk. */
  push(text) {
    this.buffer += text;
    const buf = this.buffer;
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const c = buf[i];
      if (c !== "\n" && c !== "\r") continue;
      if (c === "\r" && i === buf.length - 1) break; // a "\r\n" may be split across chunks: wait
      const line = buf.slice(start, i);
      if (c === "\r" && buf[i + 1] === "\n") i++;
      start = i + 1;
      this.line(line);
    }
    this.buffer = buf.slice(start);
  }

  /** The stream ended: an event without its closing empty line is dropped, as the format says. */
  end() {
    if (this.buffer === "\r") this.line("");
    this.buffer = "";
    this.resetEvent();
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line[0] === ":") return this.onComment(line.slice(1).trimStart());
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1);
    switch (field) {
      case "event":
        this.type = value;
        break;
      case "data":
        this.data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  dispatch() {
    if (this.data.length === 0) return this.resetEvent();
    const event = { type: this.type || "message", data: this.data.join("\n"), id: this.lastEventId };
    this.resetEvent();
    this.onEvent(event);
  }
}

/**
 * One connection: GETs `url` with `headers` (and `Last-Event-ID` when given), hands each event to
 * `onEvent` until the server closes or `signal` aborts. Resolves with the last event id seen;
 * rejects with the Response (not ok) or a network error.
 */
export async function readSse(url, { headers = {}, lastEventId = "", signal, onEvent, onOpen, onComment } = {}) {
  const h = { accept: "text/event-stream", ...headers };
  if (lastEventId) h["last-event-id"] = lastEventId;
  const res = await fetch(url, { headers: h, signal, cache: "no-store" });
  if (!res.ok || !res.body) throw res;
  onOpen?.(res);
  const parser = new SseParser(onEvent, onComment);
  parser.lastEventId = lastEventId;
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(decoder.decode(value, { stream: true }));
    }
    parser.push(decoder.decode());
  } finally {
    parser.end();
    reader.releaseLock?.();
  }
  return parser.lastEventId;
}
