import { describe, expect, it } from "vitest";
import { MAX_CLASSES, type IngestOptions } from "../../../src/datasets/index.js";
import { ingestError, utf8, type Split } from "./helpers.js";

const csv: IngestOptions = { format: "csv" };

describe("CSV ragged rows", () => {
  it("names the line and both field counts, for too few and too many fields", async () => {
    const few = await ingestError("a,b,y\n1,2,3\n4,5\n", csv);
    expect(few).toMatchObject({ code: "csv_ragged_row", param: "file", status: 400 });
    expect(few.message).toBe("line 3 has 2 fields; the header has 3");

    const many = await ingestError("a,b,y\n1,2,3\n4,5,6\n7,8,9,10\n", csv);
    expect(many).toMatchObject({ code: "csv_ragged_row", param: "file" });
    expect(many.message).toBe("line 4 has 4 fields; the header has 3");
  });

  it("counts the lines of a quoted field that spans lines, and blank lines", async () => {
    // line 1: header; lines 2-4: one row whose label spans three lines; line 5: blank; line 6: ragged.
    const text = 'a,b,y\n1,2,"first\nsecond\nthird"\n\n4,5\n';
    for (const variant of [text, text.replaceAll("\n", "\r\n")]) {
      for (const split of ["whole", "bytes"] as Split[]) {
        const err = await ingestError(variant, csv, split);
        expect(err).toMatchObject({ code: "csv_ragged_row", param: "file" });
        expect(err.message).toBe("line 6 has 2 fields; the header has 3");
      }
    }
  });

  it("numbers a row by the line it starts on", async () => {
    const err = await ingestError('a,b,y\n1,2,3\n4,"multi\nline",6,7\n', csv);
    expect(err.message).toBe("line 3 has 4 fields; the header has 3");
  });

  it("reports a ragged row before a non-numeric value in it", async () => {
    const err = await ingestError("a,b,y\n1,2,3\nabc,1\n", csv);
    expect(err).toMatchObject({ code: "csv_ragged_row", param: "file" });
    expect(err.message).toContain("line 3 ");
  });
});

describe("CSV non-numeric values", () => {
  it("names the line and the column", async () => {
    const err = await ingestError("id,age,y\n1,30,a\n2,41,b\n3,40,a\n4,50,b\n5,20,a\n6,abc,b\n", csv);
    expect(err).toMatchObject({ code: "non_numeric_value", param: "file", status: 400 });
    expect(err.message).toBe('line 7, column "age": "abc" is not a number');
  });

  it.each(["", " ", "NaN", "Infinity", "-Infinity", '"1,2"', "abc", "0x10", "1e999", "1 2", "--1", "1e"])("rejects %j", async (value) => {
    const err = await ingestError(`a,b,y\n1,2,3\n4,${value},6\n`, csv);
    expect(err).toMatchObject({ code: "non_numeric_value", param: "file" });
    expect(err.message).toMatch(/^line 3, column "b": ".*" is not a number$/);
  });

  it("reads a comma at the very end of the file as an empty last field", async () => {
    const err = await ingestError("y,a,b\n1,2,3\n4,5,", { format: "csv", target: ["y"] });
    expect(err).toMatchObject({ code: "non_numeric_value", param: "file" });
    expect(err.message).toBe('line 3, column "b": "" is not a number');
  });

  it("rejects a non-numeric target when the task is regression, naming the column", async () => {
    const err = await ingestError("a,price\n1,2\n3,cheap\n", { format: "csv", task: "regression" });
    expect(err).toMatchObject({ code: "non_numeric_value", param: "file" });
    expect(err.message).toBe('line 3, column "price": "cheap" is not a number (the task is regression)');
  });

  it("rejects a non-numeric target when there are several target columns", async () => {
    const err = await ingestError("a,t1,t2\n1,2,3\n4,5,x\n", { format: "csv", target: ["t1", "t2"] });
    expect(err).toMatchObject({ code: "non_numeric_value", param: "file" });
    expect(err.message).toContain('line 3, column "t2": "x" is not a number');
  });

  it("rejects an empty class label", async () => {
    const err = await ingestError('a,y\n1,cat\n2,""\n', csv);
    expect(err).toMatchObject({ code: "invalid_csv", param: "file" });
    expect(err.message).toBe('line 3, column "y": the target is empty');
  });

  it("settles a numeric column with too many distinct values as regression, then rejects text in it", async () => {
    const lines = ["a,y"];
    for (let r = 0; r <= MAX_CLASSES; r++) lines.push(`${r},${r}.5`);
    lines.push("0,oops");
    const err = await ingestError(lines.join("\n"), csv);
    expect(err).toMatchObject({ code: "non_numeric_value", param: "file" });
    expect(err.message).toContain(`line ${MAX_CLASSES + 3}, column "y": "oops" is not a number`);
    expect(err.message).toContain("too many to be class labels");
  });
});

describe("CSV header and target errors", () => {
  it("rejects an unknown target column, naming it and listing the header", async () => {
    const err = await ingestError("age,height,label\n1,2,3\n", { format: "csv", target: ["weight"] });
    expect(err).toMatchObject({ code: "unknown_column", param: "target", status: 400 });
    expect(err.message).toContain('"weight"');
    expect(err.message).toContain('"age", "height", "label"');
  });

  it("rejects a duplicate header name", async () => {
    const err = await ingestError("a,b,a\n1,2,3\n", csv);
    expect(err).toMatchObject({ code: "invalid_csv", param: "file" });
    expect(err.message).toBe('line 1: the header names column "a" twice (columns 1 and 3)');
  });

  it("rejects an empty header name, on the header's own line", async () => {
    const err = await ingestError("\n\na,,y\n1,2,3\n", csv);
    expect(err).toMatchObject({ code: "invalid_csv", param: "file" });
    expect(err.message).toBe("line 3: column 2 of the header has no name");
  });

  it("rejects classification with more than one target column", async () => {
    const err = await ingestError("a,b,c\n1,2,3\n", { format: "csv", target: ["b", "c"], task: "classification" });
    expect(err).toMatchObject({ code: "invalid_request", param: "target" });
  });

  it("rejects a file whose every column is a target", async () => {
    const err = await ingestError("y\n1\n", csv);
    expect(err).toMatchObject({ code: "invalid_request", param: "target" });
  });

  it("rejects a target named twice", async () => {
    const err = await ingestError("a,b,c\n1,2,3\n", { format: "csv", target: ["b", "b"] });
    expect(err).toMatchObject({ code: "invalid_request", param: "target" });
  });
});

describe("CSV empty files", () => {
  it.each([
    ["an empty file", "", "the file is empty"],
    ["only blank lines", "\n\r\n\n", "the file is empty"],
    ["a header only", "a,b,y\n", "header row but no data rows"],
    ["a header and blank lines", "a,b,y\r\n\r\n\r\n", "header row but no data rows"],
  ])("rejects %s", async (_, text, reason) => {
    const err = await ingestError(text, csv);
    expect(err).toMatchObject({ code: "empty_dataset", param: "file" });
    expect(err.message).toContain(reason);
  });
});

describe("CSV syntax errors", () => {
  it("names the line where an unterminated quote opens", async () => {
    const err = await ingestError('a,b,y\n1,2,3\n4,5,"never\nclosed\n', csv);
    expect(err).toMatchObject({ code: "invalid_csv", param: "file" });
    expect(err.message).toBe("line 3: a quoted field opens here and is never closed");
  });

  it("rejects text after a closing quote, naming the line", async () => {
    const err = await ingestError('a,b,y\n1,2,3\n4,"5"x,6\n', csv);
    expect(err).toMatchObject({ code: "invalid_csv", param: "file" });
    expect(err.message).toContain("line 3:");
  });

  it("rejects bytes that are not UTF-8", async () => {
    const bytes = new Uint8Array([...utf8("a,y\n1,"), 0xff, 0xfe, ...utf8("\n")]);
    const err = await ingestError(bytes, csv);
    expect(err).toMatchObject({ code: "invalid_csv", param: "file" });
    expect(err.message).toContain("UTF-8");
  });

  it("rejects a file cut in the middle of a UTF-8 character", async () => {
    const bytes = utf8("a,y\n1,é");
    const err = await ingestError(bytes.slice(0, bytes.length - 1), csv);
    expect(err).toMatchObject({ code: "invalid_csv", param: "file" });
  });
});

describe("option errors", () => {
  it("rejects an input_shape whose product is not the feature count", async () => {
    const err = await ingestError("a,b,c,y\n1,2,3,4\n", { format: "csv", inputShape: [2, 2] });
    expect(err).toMatchObject({ code: "invalid_request", param: "input_shape", status: 400 });
    expect(err.message).toBe("input_shape [2, 2] holds 4 values, but the file has 3 feature columns");
  });

  it.each([[[]], [[0, 3]], [[1.5, 2]], [[-1, -3]]])("rejects the malformed input_shape %j before reading", async (shape) => {
    const err = await ingestError("a,b,c,y\n1,2,3,4\n", { format: "csv", inputShape: shape });
    expect(err).toMatchObject({ code: "invalid_request", param: "input_shape" });
  });

  it("rejects an unknown format and task", async () => {
    expect(await ingestError("a\n", { format: "xml" as "csv" })).toMatchObject({ code: "invalid_request", param: "format" });
    expect(await ingestError("a\n", { format: "csv", task: "ranking" as "regression" })).toMatchObject({ code: "invalid_request", param: "task" });
  });
});
