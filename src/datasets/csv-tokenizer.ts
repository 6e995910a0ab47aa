// A streaming RFC 4180 tokenizer: text goes in as pieces cut anywhere, fields and record ends come
// out to a sink. It keeps no row in memory, only the field being read when a piece ends in the middle
// of it. It can pause after any record (when the sink asks), so the caller can hand a full chunk on
// and wait before reading further.
//
// Accepted beyond the RFC: LF or a lone CR as line ends besides CRLF; blank (or whitespace-only) lines,
// which are skipped; spaces after a closing quote; a quote inside an unquoted field, kept as is (so
// in `1, "a"` the second field is ` "a"`, quotes included, as the RFC reads it).
import { AppError } from "../errors.js";

export interface CsvSink {
  /**
   * The next field of the current record, with quotes removed and "" unescaped: the characters of
   * `text` from `start` to `end` (exclusive). Passing the range, not a cut-out string, lets the sink
   * parse a number where it lies.
   */
  field(text: string, start: number, end: number): void;
  /**
   * The current record is complete. `line` is the physical line (1-based) it starts on.
   * Return true to pause the tokenizer after this record.
   */
  endRecord(line: number): boolean;
}

const TAB = 9;
const LF = 10;
const CR = 13;
const SPACE = 32;
const QUOTE = 34;
const COMMA = 44;

const FIELD_START = 0; // before the first character of a field
const UNQUOTED = 1; // inside a field that does not start with a quote
const QUOTED = 2; // inside a quoted field
const QUOTE_SEEN = 3; // a quote inside a quoted field: the closing one, or the first of ""
const AFTER_QUOTED = 4; // spaces after the closing quote

export class CsvTokenizer {
  private text = "";
  private pos = 0;
  private state = FIELD_START;
  /** Where the current field's text starts in `text` (for the part not yet in `partial`). */
  private fieldStart = 0;
  /** The current field's text so far, when it began in an earlier piece or before a "". */
  private partial = "";
  private quoted = false;
  /** Fields already completed in the current record. */
  private fieldCount = 0;
  /** The physical line of the next character. */
  private line = 1;
  private recordLine = 1;
  private quoteLine = 1;
  /** Whether the last character of the previous piece was a CR (a CRLF may be cut in two). */
  private previousEndedWithCR = false;

  constructor(private readonly sink: CsvSink) {}

  /** Gives the next piece of text. Only call it once `run` has returned false. */
  push(text: string): void {
    if (this.text.length > 0) this.previousEndedWithCR = this.text.charCodeAt(this.text.length - 1) === CR;
    this.text = text;
    this.pos = 0;
    this.fieldStart = 0;
  }

  /**
   * Reads the current piece. Returns true when the sink asked to pause (call `run` again to go on),
   * false when the piece is used up.
   */
  run(): boolean {
    const text = this.text;
    const n = text.length;
    let i = this.pos;
    while (i < n) {
      const state = this.state;
      if (state === FIELD_START) {
        const c = text.charCodeAt(i);
        if (this.fieldCount === 0) {
          if (c === LF || c === CR) {
            // A blank line, or the LF of a CRLF whose CR ended the last record.
            this.countLineEnd(c, i);
            i++;
            continue;
          }
          this.recordLine = this.line;
        }
        if (c === QUOTE) {
          this.state = QUOTED;
          this.quoted = true;
          this.quoteLine = this.line;
          this.fieldStart = ++i;
        } else {
          this.state = UNQUOTED;
          this.quoted = false;
          this.fieldStart = i;
        }
      } else if (state === UNQUOTED) {
        let j = i;
        let c = 0;
        while (j < n) {
          c = text.charCodeAt(j);
          if (c === COMMA || c === LF || c === CR) break;
          j++;
        }
        if (j === n) {
          i = n;
          break;
        }
        let value = text;
        let start = this.fieldStart;
        let end = j;
        if (this.partial.length > 0) {
          // The field began in an earlier piece.
          value = this.partial + text.slice(start, end);
          start = 0;
          end = value.length;
          this.partial = "";
        }
        i = j + 1;
        if (c === COMMA) {
          this.endField(value, start, end);
        } else {
          this.countLineEnd(c, j);
          if (this.endRecord(value, start, end)) {
            this.pos = i;
            return true;
          }
        }
      } else if (state === QUOTED) {
        let j = i;
        for (; j < n; j++) {
          const c = text.charCodeAt(j);
          if (c === QUOTE) break;
          if (c === LF || c === CR) this.countLineEnd(c, j);
        }
        if (j === n) {
          i = n;
          break;
        }
        this.partial += text.slice(this.fieldStart, j);
        this.state = QUOTE_SEEN;
        i = j + 1;
      } else {
        // QUOTE_SEEN or AFTER_QUOTED: the field's text is complete in `partial`.
        const c = text.charCodeAt(i);
        i++;
        if (c === QUOTE && state === QUOTE_SEEN) {
          this.partial += '"';
          this.state = QUOTED;
          this.fieldStart = i;
        } else if (c === SPACE || c === TAB) {
          this.state = AFTER_QUOTED;
        } else if (c === COMMA) {
          const value = this.partial;
          this.partial = "";
          this.endField(value, 0, value.length);
        } else if (c === LF || c === CR) {
          const value = this.partial;
          this.partial = "";
          this.countLineEnd(c, i - 1);
          if (this.endRecord(value, 0, value.length)) {
            this.pos = i;
            return true;
          }
        } else {
          throw new AppError(
            "invalid_csv",
            `line ${this.line}: unexpected ${JSON.stringify(text[i - 1])} after the closing quote of a field; a quote inside a quoted field is written twice ("")`,
            "file",
          );
        }
      }
    }
    if (this.state === UNQUOTED || this.state === QUOTED) {
      this.partial += text.slice(this.fieldStart, n);
      this.fieldStart = n;
    }
    this.pos = n;
    return false;
  }

  /** The input has ended: completes the last record (which may have no line end). */
  finish(): void {
    const state = this.state;
    if (state === QUOTED) {
      throw new AppError("invalid_csv", `line ${this.quoteLine}: a quoted field opens here and is never closed`, "file");
    }
    if (state === FIELD_START && this.fieldCount === 0) return;
    const value = this.partial;
    this.partial = "";
    this.endRecord(value, 0, value.length);
  }

  /** Counts a line end at text[i]: a CR, or an LF that is not the second half of a CRLF. */
  private countLineEnd(c: number, i: number): void {
    if (c === CR) {
      this.line++;
    } else {
      const previousIsCR = i > 0 ? this.text.charCodeAt(i - 1) === CR : this.previousEndedWithCR;
      if (!previousIsCR) this.line++;
    }
  }

  private endField(text: string, start: number, end: number): void {
    this.sink.field(text, start, end);
    this.fieldCount++;
    this.state = FIELD_START;
  }

  private endRecord(text: string, start: number, end: number): boolean {
    const onlyField = this.fieldCount === 0;
    this.state = FIELD_START;
    this.fieldCount = 0;
    if (onlyField && !this.quoted && isBlank(text, start, end)) return false;
    this.sink.field(text, start, end);
    return this.sink.endRecord(this.recordLine);
  }
}

function isBlank(s: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c !== SPACE && c !== TAB) return false;
  }
  return true;
}
