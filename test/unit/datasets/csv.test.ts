import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { bytesToFloat32, ingestDataset, type EncodedChunk } from "../../../src/datasets/index.js";
import { cut, ingest, streamOf, utf8 } from "./helpers.js";

describe("CSV regression", () => {
  it("takes the last column as the target by default", async () => {
    const { summary, x, y } = await ingest("a,b,price\n1,2,3.5\n4,5,-6\n", { format: "csv" });
    expect(summary).toMatchObject({
      rows: 2,
      inputWidth: 2,
      inputShape: [2],
      targetWidth: 1,
      task: "regression",
      classes: [],
      featureNames: ["a", "b"],
      targetNames: ["price"],
      chunkRows: 4096,
    });
    expect(x).toEqual([
      [1, 2],
      [4, 5],
    ]);
    expect(y).toEqual([[3.5], [-6]]);
    expect(summary.columns.map((c) => c.name)).toEqual(["a", "b", "price"]);
  });

  it("takes two named targets from the middle of the header, in the order they are named", async () => {
    const csv = "a,t1,b,t2,c\n1,10,2,20,3\n4,40,5,50,6\n";
    const { summary, x, y } = await ingest(csv, { format: "csv", target: ["t2", "t1"] });
    expect(summary.featureNames).toEqual(["a", "b", "c"]);
    expect(summary.targetNames).toEqual(["t2", "t1"]);
    expect(summary.targetWidth).toBe(2);
    expect(summary.task).toBe("regression");
    expect(x).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(y).toEqual([
      [20, 10],
      [50, 40],
    ]);
    // Features first, then the regression targets.
    expect(summary.columns.map((c) => c.name)).toEqual(["a", "b", "c", "t2", "t1"]);
  });

  it("accepts signs, exponents and whitespace around numbers, and trims header names", async () => {
    const { summary, x, y } = await ingest(" a , b ,y\n +2 ,\t1e-3, -0.5\n.5,1.,7E2\n", { format: "csv", target: ["y"] });
    expect(summary.featureNames).toEqual(["a", "b"]);
    expect(x).toEqual([
      [2, Math.fround(0.001)],
      [0.5, 1],
    ]);
    expect(y).toEqual([[-0.5], [700]]);
  });

  it("makes integer-looking targets regression when the task is not given", async () => {
    const { summary, y } = await ingest("a,y\n1,0\n2,1\n3,2\n", { format: "csv" });
    expect(summary.task).toBe("regression");
    expect(summary.classes).toEqual([]);
    expect(y).toEqual([[0], [1], [2]]);
  });
});

describe("CSV classification", () => {
  it("collects string labels as classes, sorted, and gives each row its class index", async () => {
    const { summary, y } = await ingest("a,animal\n1,dog\n2,cat\n3,bird\n4,cat\n5, dog \n", { format: "csv" });
    expect(summary.task).toBe("classification");
    expect(summary.classes).toEqual(["bird", "cat", "dog"]);
    expect(summary.targetWidth).toBe(1);
    expect(summary.targetNames).toEqual(["animal"]);
    expect(y).toEqual([[2], [1], [0], [1], [2]]);
    // Classification targets have no statistics.
    expect(summary.columns.map((c) => c.name)).toEqual(["a"]);
  });

  it("sorts integer labels numerically when classification is asked for, so index == label", async () => {
    const { summary, y } = await ingest("a,digit\n1,2\n2,10\n3,0\n4,1\n5,2\n", { format: "csv", task: "classification" });
    expect(summary.classes).toEqual(["0", "1", "2", "10"]);
    expect(y).toEqual([[2], [3], [0], [1], [2]]);
  });

  it("makes the task classification as soon as one target is not a number", async () => {
    const { summary, y } = await ingest("a,y\n1,10\n2,9\n3,x\n4,10\n", { format: "csv", chunkRows: 2 });
    expect(summary.task).toBe("classification");
    // Not all integers: lexicographic order by code units.
    expect(summary.classes).toEqual(["10", "9", "x"]);
    expect(y).toEqual([[0], [1], [2], [0]]);
    expect(summary.yChunks.map((c) => c.byteLength)).toEqual([8, 8]);
  });

  it("keeps multibyte UTF-8 labels whole when the bytes arrive one at a time or cut at random", async () => {
    const csv = "x,label\n1,café\n2,日本\n3,🐱\n4,café\n";
    for (const split of ["bytes", { random: 7 }] as const) {
      const { summary, y } = await ingest(csv, { format: "csv" }, split);
      expect(summary.classes).toEqual(["café", "日本", "🐱"]);
      expect(y).toEqual([[0], [1], [2], [0]]);
    }
  });
});

describe("CSV chunks and statistics", () => {
  it("lays x out row-major across several chunks, with y per chunk", async () => {
    const lines = ["f0,f1,f2,y"];
    for (let r = 0; r < 7; r++) lines.push(`${r},${r + 0.25},${-r},${r * 10}`);
    const { summary, chunks, y } = await ingest(lines.join("\n"), { format: "csv", chunkRows: 3 });
    expect(chunks.map((c) => [c.index, c.rows, c.x.byteLength])).toEqual([
      [0, 3, 36],
      [1, 3, 36],
      [2, 1, 12],
    ]);
    expect(Array.from(bytesToFloat32(chunks[1].x))).toEqual([3, 3.25, -3, 4, 4.25, -4, 5, 5.25, -5]);
    expect(Array.from(bytesToFloat32(chunks[2].x))).toEqual([6, 6.25, -6]);
    expect(summary.yChunks.map((c) => Array.from(bytesToFloat32(c)))).toEqual([[0, 10, 20], [30, 40, 50], [60]]);
    expect(y).toHaveLength(7);
  });

  it("ends exactly on a chunk boundary without an empty chunk", async () => {
    const { chunks, summary } = await ingest("a,y\n1,1\n2,2\n3,3\n4,4\n", { format: "csv", chunkRows: 2 });
    expect(chunks.map((c) => c.rows)).toEqual([2, 2]);
    expect(summary.yChunks).toHaveLength(2);
  });

  it("computes min, max, mean and population std of features and regression targets", async () => {
    // a = 1..8: mean 4.5, variance (8^2 - 1) / 12 = 5.25.
    // b = 1e9 + (1..8): the same spread on a large offset, which a sum of squares would lose.
    // y = 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations 9+1+1+1+0+0+4+16 = 32, variance 4, std 2.
    const ys = [2, 4, 4, 4, 5, 5, 7, 9];
    const lines = ["a,b,y", ...ys.map((v, i) => `${i + 1},${1e9 + i + 1},${v}`)];
    const { summary } = await ingest(lines.join("\n"), { format: "csv", chunkRows: 3 });
    const [a, b, y] = summary.columns;
    expect(a).toEqual({ name: "a", min: 1, max: 8, mean: 4.5, std: Math.sqrt(5.25) });
    expect(b.name).toBe("b");
    expect(b.min).toBe(1e9 + 1);
    expect(b.max).toBe(1e9 + 8);
    expect(b.mean).toBe(1e9 + 4.5);
    expect(b.std).toBeCloseTo(Math.sqrt(5.25), 6);
    expect(y).toEqual({ name: "y", min: 2, max: 9, mean: 5, std: 2 });
  });

  it("reports the byte count and the SHA-256 of exactly the bytes read", async () => {
    const csv = "\uFEFFname,\"note\",y\r\n1,2,é\r\n3,4,日\r\n";
    const bytes = utf8(csv);
    const expected = createHash("sha256").update(bytes).digest("hex");
    for (const split of ["whole", "bytes", { random: 3 }] as const) {
      const { summary } = await ingest(bytes, { format: "csv" }, split);
      expect(summary.bytes).toBe(bytes.length);
      expect(summary.sha256).toBe(expected);
    }
  });

  it("accepts string pieces and hashes their UTF-8 bytes", async () => {
    const pieces = ["a,y\n1,", "ü\n2,", "ß\n"];
    const summary = await ingestDataset(streamOf(pieces), { format: "csv" }, async () => {});
    const bytes = utf8(pieces.join(""));
    expect(summary.bytes).toBe(bytes.length);
    expect(summary.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
    expect(summary.classes).toEqual(["ß", "ü"]);
  });

  it("checks input_shape against the feature count and returns it", async () => {
    const { summary } = await ingest("a,b,c,d,y\n1,2,3,4,5\n", { format: "csv", inputShape: [1, 2, 2] });
    expect(summary.inputShape).toEqual([1, 2, 2]);
    expect(summary.inputWidth).toBe(4);
  });
});

describe("CSV syntax", () => {
  it("reads quoted fields with commas, escaped quotes and line breaks", async () => {
    const csv = ['"a","b,c",label', '"1.5", 2 ,"say ""hi"""', '3,"4","two', 'lines, and a comma"', "5,6,plain"].join("\n");
    const { summary, x, y } = await ingest(csv, { format: "csv" });
    expect(summary.featureNames).toEqual(["a", "b,c"]);
    expect(x).toEqual([
      [1.5, 2],
      [3, 4],
      [5, 6],
    ]);
    expect(summary.classes).toEqual(["plain", 'say "hi"', "two\nlines, and a comma"]);
    expect(y).toEqual([[1], [2], [0]]);
  });

  it("allows spaces after a closing quote; before an opening one, the quotes are part of the text (RFC 4180)", async () => {
    const { x, summary } = await ingest('a,y\n"1" ,"x"\t\n"2",  "y"  \n', { format: "csv" });
    expect(x).toEqual([[1], [2]]);
    expect(summary.classes).toEqual(['"y"', "x"]);
  });

  it("strips a UTF-8 byte order mark, even one cut across pieces, before a quoted header", async () => {
    for (const split of ["whole", "bytes"] as const) {
      const { summary } = await ingest('\uFEFF"first name",y\n1,2\n', { format: "csv" }, split);
      expect(summary.featureNames).toEqual(["first name"]);
    }
  });

  it("gives the same result for CRLF, LF, lone CR, a BOM, blank lines and no final line break", async () => {
    const rows = ["h1,h2,label", "1,2,a", "3,4,b", "5,6,a"];
    const reference = await ingest(rows.join("\n") + "\n", { format: "csv" });
    const variants = [
      rows.join("\r\n") + "\r\n",
      rows.join("\r"),
      "\uFEFF" + rows.join("\n"),
      "\n" + rows.join("\n\n \n\r\n") + "\n\n",
    ];
    for (const csv of variants) {
      const { summary, x, y } = await ingest(csv, { format: "csv" });
      expect(summary.featureNames).toEqual(["h1", "h2"]);
      expect(summary.classes).toEqual(reference.summary.classes);
      expect(x).toEqual(reference.x);
      expect(y).toEqual(reference.y);
    }
  });

  it("gives the same result whether the bytes come whole, one at a time or cut at random", async () => {
    const csv =
      '\uFEFF"id","size, cm",weight,"kind"\r\n' +
      '1,"12.5",3e2,"cat ""tabby"""\r\n' +
      "\r\n" +
      '2,  7 ,"4",dog\r\n' +
      '3,1,2,"multi\r\nline é"\r\n' +
      "4,-1.25,0,日本\r\n";
    const whole = await ingest(csv, { format: "csv", chunkRows: 2 });
    expect(whole.summary.rows).toBe(4);
    expect(whole.summary.classes).toEqual(['cat "tabby"', "dog", "multi\r\nline é", "日本"]);
    const splits = ["bytes", { every: 2 }, { every: 5 }, ...[1, 2, 3, 4, 5, 6, 7, 8].map((random) => ({ random }))] as const;
    for (const split of splits) {
      const other = await ingest(csv, { format: "csv", chunkRows: 2 }, split);
      expect(other.summary).toEqual(whole.summary);
      expect(other.chunks).toEqual(whole.chunks);
    }
  });
});

describe("backpressure", () => {
  it("awaits onChunk before reading more input, and hands chunks on in order", async () => {
    const lines = ["a,b,y"];
    for (let r = 0; r < 50; r++) lines.push(`${r},${2 * r},${r % 3}`);
    const pieces = cut(utf8(lines.join("\n")), { every: 64 });

    let busy = false;
    let pulledWhileBusy = 0;
    async function* source() {
      for (const piece of pieces) {
        if (busy) pulledWhileBusy++;
        yield piece;
      }
    }
    const seen: EncodedChunk[] = [];
    const summary = await ingestDataset(source(), { format: "csv", chunkRows: 4 }, async (chunk) => {
      expect(busy).toBe(false);
      busy = true;
      await new Promise((resolve) => setTimeout(resolve, 2));
      seen.push(chunk);
      busy = false;
    });

    expect(pulledWhileBusy).toBe(0);
    expect(seen.map((c) => c.index)).toEqual(Array.from({ length: 13 }, (_, i) => i));
    expect(seen.reduce((n, c) => n + c.rows, 0)).toBe(50);
    expect(summary.rows).toBe(50);
    const firstColumn = seen.flatMap((c) => Array.from(bytesToFloat32(c.x)).filter((_, i) => i % 2 === 0));
    expect(firstColumn).toEqual(Array.from({ length: 50 }, (_, r) => r));
  });
});
