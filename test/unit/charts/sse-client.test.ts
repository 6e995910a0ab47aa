// The dashboard's own server-sent-events reader (web/sse.js, plain JS run by the browser): the
// parser against the event-stream format, and readSse against a local HTTP server that splits its
// output at awkward places, sends keep-alive comments, and honours Last-Event-ID.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

interface SseEvent { type: string; data: string; id: string }
// web/ is plain JS, outside the TypeScript project: load it by URL.
const sse: {
  SseParser: new (onEvent: (e: SseEvent) => void, onComment?: (c: string) => void) => { push(t: string): void; end(): void; lastEventId: string };
  readSse: (url: string, opts: Record<string, unknown>) => Promise<string>;
} = await import(new URL("../../../web/sse.js", import.meta.url).href);

function parseAll(chunks: string[]) {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const p = new sse.SseParser((e) => events.push(e), (c) => comments.push(c));
  for (const c of chunks) p.push(c);
  p.end();
  return { events, comments };
}

describe("SseParser", () => {
  const stream = 'event: status\ndata: {"status":"running"}\n\n: ping\n\nid: 1\nevent: epoch\ndata: {"epoch":1}\n\nid: 2\nevent: epoch\ndata: {"epoch":2}\n\nevent: end\ndata: {"a":1}\ndata: {"b":2}\n\n';

  it("reads events, ids, multi-line data and comments", () => {
    const { events, comments } = parseAll([stream]);
    expect(events.map((e) => e.type)).toEqual(["status", "epoch", "epoch", "end"]);
    expect(events[1]).toEqual({ type: "epoch", data: '{"epoch":1}', id: "1" });
    expect(events[3].data).toBe('{"a":1}\n{"b":2}');
    expect(events[3].id).toBe("2"); // the last id carries over
    expect(comments).toEqual(["ping"]);
  });

  it("gives the same events however the text is split, with \\n, \\r\\n or \\r line ends", () => {
    const expected = parseAll([stream]).events;
    for (const eol of ["\n", "\r\n", "\r"]) {
      const text = stream.replace(/\n/g, eol);
      for (const size of [1, 2, 3, 7, 13]) {
        const chunks: string[] = [];
        for (let i = 0; i < text.length; i += size) chunks.push(text.slice(i, i + size));
        expect(parseAll(chunks).events, `eol ${JSON.stringify(eol)}, chunks of ${size}`).toEqual(expected);
      }
    }
  });

  it("drops an event cut off before its blank line, and events without data", () => {
    const { events } = parseAll(["event: status\n\nid: 3\nevent: epoch\ndata: {\"epoch\":3}"]);
    expect(events).toEqual([]);
  });

  it("takes 'data' without a colon as an empty line of data, and one leading space off values only", () => {
    const { events } = parseAll(["data\ndata:  two spaces\n\n"]);
    expect(events[0].data).toBe("\n two spaces");
  });
});

describe("readSse", () => {
  let server: Server;
  let base = "";
  const seenLastIds: (string | undefined)[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.headers.authorization !== "Bearer k") {
        res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "unauthorized", message: "no", param: "authorization" } }));
        return;
      }
      const last = req.headers["last-event-id"] as string | undefined;
      seenLastIds.push(last);
      res.writeHead(200, { "content-type": "text/event-stream" });
      const from = last ? Number(last) + 1 : 1;
      const text = [`event: status\ndata: {"status":"running"}\n\n`, ": ping\n\n"];
      for (let e = from; e <= 5; e++) text.push(`id: ${e}\nevent: epoch\ndata: {"epoch":${e}}\n\n`);
      // The first connection drops after epoch 3 (mid-event); a reconnect gets the rest and `end`.
      const all = text.join("");
      if (!last) {
        const cut = all.indexOf("id: 4") + 8;
        const body = all.slice(0, cut);
        let i = 0;
        const tick = setInterval(() => {
          if (i >= body.length) {
            clearInterval(tick);
            res.destroy();
            return;
          }
          res.write(body.slice(i, i + 5));
          i += 5;
        }, 1);
        return;
      }
      res.end(all + 'event: end\ndata: {"status":"succeeded"}\n\n');
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("reads a dropped stream, then resumes after the last id without duplicates", async () => {
    const epochs: number[] = [];
    const types: string[] = [];
    const onEvent = (e: SseEvent) => {
      types.push(e.type);
      if (e.type === "epoch") epochs.push(JSON.parse(e.data).epoch);
    };
    let last = "";
    try {
      last = await sse.readSse(`${base}/stream`, { headers: { authorization: "Bearer k" }, onEvent });
    } catch {
      // a dropped connection may reject; what was read counts
    }
    expect(epochs).toEqual([1, 2, 3]);
    last = String(epochs[epochs.length - 1]);
    last = await sse.readSse(`${base}/stream`, { headers: { authorization: "Bearer k" }, lastEventId: last, onEvent });
    expect(epochs).toEqual([1, 2, 3, 4, 5]);
    expect(types[types.length - 1]).toBe("end");
    expect(last).toBe("5");
    expect(seenLastIds).toEqual([undefined, "3"]);
  });

  it("rejects with the Response when the server refuses", async () => {
    const err = await sse.readSse(`${base}/stream`, { headers: {}, onEvent: () => undefined }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Response);
    expect((err as Response).status).toBe(401);
  });
});
