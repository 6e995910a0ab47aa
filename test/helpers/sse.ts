// A small server-sent events client for tests, over fetch's body stream: parses the event stream
// format (fields `event`, `data`, `id`, `retry`; `:` comments; blank line dispatches) and hands
// out events and comments one at a time, in the order they arrived.

export interface SseMessage {
  kind: "event";
  /** `message` when the event has no `event:` field. */
  event: string;
  data: string;
  /** The `id:` of this event, if it had one. */
  id: string | undefined;
  /** The stream's last event id after this event (what EventSource would send on reconnect). */
  lastEventId: string;
}

export interface SseComment {
  kind: "comment";
  text: string;
}

export type SseItem = SseMessage | SseComment;

export interface SseStream {
  status: number;
  headers: Headers;
  /** The body as text when the answer was not an event stream (an error). */
  errorBody: string | null;
  /** The last `retry:` value received. */
  retry(): number | undefined;
  /** The next event or comment; null once the server has ended the stream. */
  next(): Promise<SseItem | null>;
  /** The next event (skipping comments); null once the stream has ended. */
  nextEvent(): Promise<SseMessage | null>;
  /** Disconnects (aborts the request). */
  close(): void;
}

export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const abort = new AbortController();
  const res = await fetch(url, { headers: { accept: "text/event-stream", ...headers }, signal: abort.signal });
  if (!(res.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      errorBody: text,
      retry: () => undefined,
      next: async () => null,
      nextEvent: async () => null,
      close: () => abort.abort(),
    };
  }
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const queue: SseItem[] = [];
  let buffer = "";
  let ended = false;
  let retry: number | undefined;
  let lastEventId = "";
  // The event being assembled.
  let event = "";
  let data: string[] = [];
  let id: string | undefined;
  let sawField = false;

  function line(text: string) {
    if (text === "") {
      if (sawField && data.length > 0) {
        queue.push({ kind: "event", event: event || "message", data: data.join("\n"), id, lastEventId });
      }
      event = "";
      data = [];
      id = undefined;
      sawField = false;
      return;
    }
    if (text.startsWith(":")) {
      queue.push({ kind: "comment", text: text.slice(1).replace(/^ /, "") });
      return;
    }
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    const value = colon === -1 ? "" : text.slice(colon + 1).replace(/^ /, "");
    sawField = true;
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) {
      id = value;
      lastEventId = value;
    } else if (field === "retry" && /^\d+$/.test(value)) retry = Number(value);
  }

  function parse() {
    for (;;) {
      const m = /\r\n|\r|\n/.exec(buffer);
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (!m || (m[0] === "\r" && m.index === buffer.length - 1 && !ended)) return;
      line(buffer.slice(0, m.index));
      buffer = buffer.slice(m.index + m[0].length);
    }
  }

  async function next(): Promise<SseItem | null> {
    for (;;) {
      const item = queue.shift();
      if (item) return item;
      if (ended) return null;
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch {
        ended = true; // aborted
        continue;
      }
      if (chunk.done) {
        ended = true;
        buffer += decoder.decode();
        parse();
        continue;
      }
      buffer += decoder.decode(chunk.value, { stream: true });
      parse();
    }
  }

  return {
    status: res.status,
    headers: res.headers,
    errorBody: null,
    retry: () => retry,
    next,
    async nextEvent() {
      for (;;) {
        const item = await next();
        if (item === null || item.kind === "event") return item;
      }
    },
    close() {
      ended = true;
      abort.abort();
    },
  };
}
