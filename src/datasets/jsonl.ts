// JSON Lines -> rows of a dataset. Each non-blank line is one record `{"x": number[], "y": ...}`:
// y a number or a string (one target, "y"), or an array of numbers (targets y0..y{k-1}). The first
// record fixes the widths; every later one must match them.
import { AppError } from "../errors.js";
import type { ChunkBuilder } from "./chunk-builder.js";
import { quote, type DatasetReader, type ReaderOptions } from "./reader.js";
import { TargetValue } from "./targets.js";

export class JsonlDatasetReader implements DatasetReader {
  builder: ChunkBuilder | null = null;

  private text = "";
  private pos = 0;
  /** Pieces of a line that began in an earlier piece of text. */
  private carried: string[] = [];
  /** Lines completed so far. */
  private line = 0;
  /** Width of y in the first record; 0 when y is a single value. */
  private yWidth = 0;

  constructor(private readonly options: ReaderOptions) {}

  push(text: string): void {
    this.text = text;
    this.pos = 0;
  }

  run(): boolean {
    const text = this.text;
    while (this.pos < text.length) {
      const end = text.indexOf("\n", this.pos);
      if (end < 0) {
        this.carried.push(text.slice(this.pos));
        this.pos = text.length;
        break;
      }
      let lineText = text.slice(this.pos, end);
      if (this.carried.length > 0) {
        this.carried.push(lineText);
        lineText = this.carried.join("");
        this.carried = [];
      }
      this.pos = end + 1;
      this.line++;
      if (this.readLine(lineText, this.line)) return true;
    }
    return false;
  }

  finish(): void {
    if (this.carried.length === 0) return;
    const lineText = this.carried.join("");
    this.carried = [];
    this.line++;
    this.readLine(lineText, this.line);
  }

  describeEmpty(): string {
    return "the file has no records";
  }

  /** Reads one line; true when the chunk is now full. */
  private readLine(text: string, line: number): boolean {
    if (text.trim().length === 0) return false;
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new AppError("invalid_jsonl", `line ${line} is not valid JSON: ${reason.slice(0, 200)}`, "file");
    }
    if (typeof record !== "object" || record === null || Array.isArray(record)) {
      throw new AppError("invalid_jsonl", `line ${line}: a record must be a JSON object like {"x": [1, 2], "y": 3}`, "file");
    }
    const { x, y } = record as { x?: unknown; y?: unknown };
    if (!Array.isArray(x) || x.length === 0) {
      throw new AppError("invalid_jsonl", `line ${line}: "x" must be a non-empty array of numbers`, "file");
    }
    if (y === undefined || y === null || !(typeof y === "number" || typeof y === "string" || Array.isArray(y))) {
      throw new AppError("invalid_jsonl", `line ${line}: "y" must be a number, a string or an array of numbers`, "file");
    }
    const yWidth = Array.isArray(y) ? y.length : 0;
    if (Array.isArray(y) && yWidth === 0) throw new AppError("invalid_jsonl", `line ${line}: "y" is an empty array`, "file");

    const builder = this.builder ?? this.start(x.length, yWidth);
    if (x.length !== builder.inputWidth) {
      throw new AppError("invalid_jsonl", `line ${line}: x has ${x.length} values; the first record's x has ${builder.inputWidth}`, "file");
    }
    if (yWidth !== this.yWidth) {
      throw new AppError("invalid_jsonl", `line ${line}: y is ${describeY(yWidth)}; the first record's y is ${describeY(this.yWidth)}`, "file");
    }

    builder.beginRow();
    for (let j = 0; j < x.length; j++) {
      const v: unknown = x[j];
      if (typeof v !== "number" || !Number.isFinite(v)) {
        throw new AppError("non_numeric_value", `line ${line}: x[${j}] is not a number: ${describeValue(v)}`, "file");
      }
      builder.setFeature(j, v);
    }

    if (Array.isArray(y)) {
      for (let t = 0; t < y.length; t++) {
        const v: unknown = y[t];
        if (typeof v !== "number" || !Number.isFinite(v)) {
          throw new AppError("non_numeric_value", `line ${line}: y[${t}] is not a number: ${describeValue(v)}`, "file");
        }
        this.addTarget(builder, line, `y[${t}]`, t, String(v), v);
      }
    } else if (typeof y === "number") {
      if (!Number.isFinite(y)) throw new AppError("non_numeric_value", `line ${line}: y is not a finite number`, "file");
      this.addTarget(builder, line, "y", 0, String(y), y);
    } else {
      // A JSON string is a label even when it looks like a number: the type says what it is.
      this.addTarget(builder, line, "y", 0, y, NaN);
    }
    return builder.commitRow();
  }

  private addTarget(builder: ChunkBuilder, line: number, where: string, t: number, label: string, value: number): void {
    const outcome = builder.addTarget(t, label, value);
    if (outcome === TargetValue.emptyLabel) throw new AppError("invalid_jsonl", `line ${line}: ${where} is an empty label`, "file");
    if (outcome === TargetValue.notNumeric) {
      throw new AppError("non_numeric_value", `line ${line}: ${where} is ${quote(label)}, not a number (${builder.targets.numericReason})`, "file");
    }
  }

  private start(inputWidth: number, yWidth: number): ChunkBuilder {
    this.yWidth = yWidth;
    const featureNames = Array.from({ length: inputWidth }, (_, j) => `x${j}`);
    const targetNames = yWidth === 0 ? ["y"] : Array.from({ length: yWidth }, (_, t) => `y${t}`);
    this.builder = this.options.createBuilder(featureNames, targetNames);
    return this.builder;
  }
}

function describeY(width: number): string {
  return width === 0 ? "a single value" : `an array of ${width}`;
}

function describeValue(v: unknown): string {
  if (typeof v === "string") return quote(v);
  const text = JSON.stringify(v);
  return text === undefined ? String(v) : text.length > 40 ? `${text.slice(0, 40)}...` : text;
}
