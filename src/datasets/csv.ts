// CSV with a header row -> rows of a dataset. The first record names the columns; every later record
// is a row whose fields are parsed straight into the chunk being filled, without building an array of
// strings per row.
import { AppError } from "../errors.js";
import { ChunkBuilder } from "./chunk-builder.js";
import { CsvTokenizer, type CsvSink } from "./csv-tokenizer.js";
import { quote, type DatasetReader, type ReaderOptions } from "./reader.js";
import { parseDecimal } from "./numbers.js";
import { TargetValue } from "./targets.js";

export class CsvDatasetReader implements DatasetReader, CsvSink {
  builder: ChunkBuilder | null = null;

  private readonly tokenizer = new CsvTokenizer(this);
  private readonly header: string[] = [];
  /** For each column: its feature index (>= 0), or -1 - its target index. */
  private roles = new Int32Array(0);
  private targetColumns: number[] = [];
  /** The current row's target fields, set aside until the row is known to be whole. */
  private targetFields: string[] = [];
  /** Fields seen in the current row. */
  private col = 0;
  /** The first feature field of the current row that is not a number (-1: none). */
  private badColumn = -1;
  private badValue = "";

  constructor(private readonly options: ReaderOptions) {}

  push(text: string): void {
    this.tokenizer.push(text);
  }

  run(): boolean {
    return this.tokenizer.run();
  }

  finish(): void {
    this.tokenizer.finish();
  }

  describeEmpty(): string {
    return this.header.length === 0 ? "the file is empty" : "the file has a header row but no data rows";
  }

  field(text: string, start: number, end: number): void {
    const builder = this.builder;
    if (builder === null) {
      this.header.push(text.slice(start, end));
      return;
    }
    const col = this.col++;
    if (col >= this.roles.length) return; // a ragged row, reported at its end
    if (col === 0) builder.beginRow();
    const role = this.roles[col];
    if (role >= 0) {
      const v = parseDecimal(text, start, end);
      if (v === v) {
        builder.setFeature(role, v);
      } else if (this.badColumn < 0) {
        this.badColumn = col;
        this.badValue = text.slice(start, end);
      }
    } else {
      this.targetFields[-1 - role] = text.slice(start, end);
    }
  }

  endRecord(line: number): boolean {
    const builder = this.builder;
    if (builder === null) {
      this.readHeader(line);
      return false;
    }
    const fields = this.col;
    this.col = 0;
    if (fields !== this.roles.length) {
      throw new AppError("csv_ragged_row", `line ${line} has ${fields} field${fields === 1 ? "" : "s"}; the header has ${this.roles.length}`, "file");
    }
    if (this.badColumn >= 0) {
      const column = this.header[this.badColumn];
      const value = this.badValue;
      this.badColumn = -1;
      throw new AppError("non_numeric_value", `line ${line}, column "${column}": ${quote(value)} is not a number`, "file");
    }
    const targets = builder.targets;
    for (let t = 0; t < this.targetFields.length; t++) {
      const label = this.targetFields[t].trim();
      const value = targets.wantsNumbers ? parseDecimal(label) : NaN;
      const outcome = builder.addTarget(t, label, value);
      if (outcome !== TargetValue.accepted) {
        const column = this.header[this.targetColumns[t]];
        if (outcome === TargetValue.emptyLabel) {
          throw new AppError("invalid_csv", `line ${line}, column "${column}": the target is empty`, "file");
        }
        throw new AppError("non_numeric_value", `line ${line}, column "${column}": ${quote(label)} is not a number (${targets.numericReason})`, "file");
      }
    }
    return builder.commitRow();
  }

  /** Checks the header and decides which columns are features and which are targets. */
  private readHeader(line: number): void {
    const header = this.header;
    const seen = new Map<string, number>();
    header.forEach((raw, col) => {
      const name = raw.trim();
      if (name.length === 0) throw new AppError("invalid_csv", `line ${line}: column ${col + 1} of the header has no name`, "file");
      const earlier = seen.get(name);
      if (earlier !== undefined) {
        throw new AppError("invalid_csv", `line ${line}: the header names column "${name}" twice (columns ${earlier + 1} and ${col + 1})`, "file");
      }
      seen.set(name, col);
      header[col] = name;
    });

    const targetNames = this.options.target ?? [header[header.length - 1]];
    this.targetColumns = targetNames.map((name) => {
      const col = seen.get(name);
      if (col === undefined) {
        throw new AppError("unknown_column", `target column "${name}" is not in the header; the header has ${describeHeader(header)}`, "target");
      }
      return col;
    });

    const roles = new Int32Array(header.length);
    const featureNames: string[] = [];
    this.targetColumns.forEach((col, t) => (roles[col] = -1 - t));
    header.forEach((name, col) => {
      if (roles[col] === 0) roles[col] = featureNames.push(name) - 1; // not a target
    });
    if (featureNames.length === 0) {
      throw new AppError("invalid_request", `every column of the file is a target (${targetNames.join(", ")}); at least one feature column is needed`, "target");
    }
    this.roles = roles;
    this.targetFields = new Array<string>(targetNames.length).fill("");
    this.builder = this.options.createBuilder(featureNames, targetNames);
  }
}

function describeHeader(header: readonly string[]): string {
  const shown = header.slice(0, 50).map((name) => `"${name}"`);
  const more = header.length > 50 ? ` and ${header.length - 50} more` : "";
  return `${header.length} column${header.length === 1 ? "" : "s"}: ${shown.join(", ")}${more}`;
}
