import { describe, expect, it } from "vitest";
import type { IngestOptions } from "../../../src/datasets/index.js";
import { ingest, ingestError } from "./helpers.js";

const jsonl: IngestOptions = { format: "jsonl" };
const lines = (...records: unknown[]) => records.map((r) => JSON.stringify(r)).join("\n") + "\n";

describe("JSON Lines", () => {
  it("reads a scalar regression target", async () => {
    const text = lines({ x: [1, 2], y: 0.5 }, { x: [3, 4], y: -1.5 }, { x: [5, 6], y: 4 });
    const { summary, x, y } = await ingest(text, jsonl);
    expect(summary).toMatchObject({
      rows: 3,
      inputWidth: 2,
      inputShape: [2],
      targetWidth: 1,
      task: "regression",
      classes: [],
      featureNames: ["x0", "x1"],
      targetNames: ["y"],
    });
    expect(x).toEqual([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    expect(y).toEqual([[0.5], [-1.5], [4]]);
    // x0 = 1, 3, 5: mean 3, variance (4 + 0 + 4) / 3 = 8/3.
    expect(summary.columns[0]).toEqual({ name: "x0", min: 1, max: 5, mean: 3, std: Math.sqrt(8 / 3) });
    expect(summary.columns.map((c) => c.name)).toEqual(["x0", "x1", "y"]);
  });

  it("reads a vector regression target", async () => {
    const text = lines({ x: [1], y: [10, 20, 30] }, { x: [2], y: [40, 50, 60] });
    const { summary, y } = await ingest(text, { format: "jsonl", chunkRows: 1 });
    expect(summary.targetNames).toEqual(["y0", "y1", "y2"]);
    expect(summary.targetWidth).toBe(3);
    expect(summary.task).toBe("regression");
    expect(summary.yChunks.map((c) => c.byteLength)).toEqual([12, 12]);
    expect(y).toEqual([
      [10, 20, 30],
      [40, 50, 60],
    ]);
    expect(summary.columns.map((c) => c.name)).toEqual(["x0", "y0", "y1", "y2"]);
  });

  it("makes string targets classification, even when they look like numbers", async () => {
    const text = lines({ x: [1, 1], y: "spam" }, { x: [0, 1], y: "ham" }, { x: [1, 0], y: "spam" }, { x: [0, 0], y: "3" });
    const { summary, y } = await ingest(text, jsonl);
    expect(summary.task).toBe("classification");
    expect(summary.classes).toEqual(["3", "ham", "spam"]);
    expect(y).toEqual([[2], [1], [2], [0]]);
  });

  it("uses numeric labels as classes when classification is asked for", async () => {
    const text = lines({ x: [1], y: 1 }, { x: [2], y: 0 }, { x: [3], y: 11 }, { x: [4], y: 2 });
    const { summary, y } = await ingest(text, { format: "jsonl", task: "classification" });
    expect(summary.classes).toEqual(["0", "1", "2", "11"]);
    expect(y).toEqual([[1], [0], [3], [2]]);
  });

  it("skips blank lines, takes CRLF and a last line without a line break, in any split", async () => {
    const text = '\n{"x":[1,2],"y":3}\r\n  \r\n{"x":[4,5],"y":6}';
    for (const split of ["whole", "bytes", { random: 11 }] as const) {
      const { summary, x, y } = await ingest(text, jsonl, split);
      expect(summary.rows).toBe(2);
      expect(x).toEqual([
        [1, 2],
        [4, 5],
      ]);
      expect(y).toEqual([[3], [6]]);
    }
  });

  it("checks input_shape against the width of x", async () => {
    const { summary } = await ingest(lines({ x: [1, 2, 3, 4], y: 1 }), { format: "jsonl", inputShape: [2, 2] });
    expect(summary.inputShape).toEqual([2, 2]);
    const err = await ingestError(lines({ x: [1, 2, 3, 4], y: 1 }), { format: "jsonl", inputShape: [3] });
    expect(err).toMatchObject({ code: "invalid_request", param: "input_shape" });
  });
});

describe("JSON Lines errors", () => {
  it("rejects an x of another length, naming the line and both lengths", async () => {
    const text = lines({ x: [1, 2, 3], y: 1 }, { x: [4, 5, 6], y: 2 }, { x: [7, 8], y: 3 });
    const err = await ingestError(text, jsonl);
    expect(err).toMatchObject({ code: "invalid_jsonl", param: "file", status: 400 });
    expect(err.message).toBe("line 3: x has 2 values; the first record's x has 3");
  });

  it("names the line of malformed JSON, counting blank lines", async () => {
    const text = '{"x":[1],"y":1}\n\n{"x":[2],"y":2}\n{"x":[3], "y":}\n';
    for (const split of ["whole", "bytes"] as const) {
      const err = await ingestError(text, jsonl, split);
      expect(err).toMatchObject({ code: "invalid_jsonl", param: "file" });
      expect(err.message).toMatch(/^line 4 is not valid JSON/);
    }
  });

  it("rejects a non-numeric x entry, naming the line", async () => {
    const err = await ingestError(lines({ x: [1, 2], y: 1 }, { x: [1, "2"], y: 1 }), jsonl);
    expect(err).toMatchObject({ code: "non_numeric_value", param: "file" });
    expect(err.message).toBe('line 2: x[1] is not a number: "2"');
  });

  it("rejects a y of another width", async () => {
    const err = await ingestError(lines({ x: [1], y: [1, 2] }, { x: [2], y: 3 }), jsonl);
    expect(err).toMatchObject({ code: "invalid_jsonl", param: "file" });
    expect(err.message).toBe("line 2: y is a single value; the first record's y is an array of 2");
  });

  it("rejects a string y when the task is regression", async () => {
    const err = await ingestError(lines({ x: [1], y: 1 }, { x: [2], y: "two" }), { format: "jsonl", task: "regression" });
    expect(err).toMatchObject({ code: "non_numeric_value", param: "file" });
    expect(err.message).toContain("line 2: y is \"two\", not a number");
  });

  it("rejects a vector y when the task is classification", async () => {
    const err = await ingestError(lines({ x: [1], y: [1, 2] }), { format: "jsonl", task: "classification" });
    expect(err).toMatchObject({ code: "invalid_request", param: "target" });
  });

  it.each([
    ["an array", "[1, 2]"],
    ["no x", '{"y": 1}'],
    ["an empty x", '{"x": [], "y": 1}'],
    ["no y", '{"x": [1]}'],
    ["a boolean y", '{"x": [1], "y": true}'],
  ])("rejects a record that is %s", async (_, record) => {
    const err = await ingestError(`{"x":[0],"y":0}\n${record}\n`, jsonl);
    expect(err).toMatchObject({ code: "invalid_jsonl", param: "file" });
    expect(err.message).toMatch(/^line 2: /);
  });

  it("rejects a file with no records", async () => {
    const err = await ingestError("\n \n", jsonl);
    expect(err).toMatchObject({ code: "empty_dataset", param: "file" });
  });
});
