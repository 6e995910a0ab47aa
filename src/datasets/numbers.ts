// Reading numbers out of text, and the per-column statistics kept while the rows stream past.

const TAB = 9;
const SPACE = 32;
const PLUS = 43;
const MINUS = 45;
const DOT = 46;
const ZERO = 48;
const NINE = 57;
const LOWER_E = 101;

function isBlankChar(c: number): boolean {
  return c === SPACE || c === TAB;
}

function isDigit(c: number): boolean {
  return c >= ZERO && c <= NINE;
}

/** Powers of ten that are exact doubles (10^22 is the largest). */
const EXACT_POWERS_OF_TEN = Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));

/**
 * Parses a finite decimal number: an optional sign, digits with an optional fraction, an optional
 * exponent ("1", "-0.5", "+2", ".5", "1e-3"), with spaces or tabs around it. Anything else gives NaN:
 * "", "NaN", "Infinity", "1,2", "abc", hexadecimal "0x1f" (which `Number` alone would accept), and
 * values too large for a double ("1e999").
 *
 * One scan over the character codes checks the form and gathers the digits as an integer. When that
 * integer and the power of ten are both exact doubles (at most 2^53 and 10^22, true of almost every
 * value in a CSV file), one multiplication or division gives the correctly rounded result (Clinger's
 * fast path). Otherwise `Number` converts the text, also correctly rounded.
 *
 * `from` and `to` delimit the number within `s`, so a field can be read where it lies in the text
 * without cutting it out first.
 */
export function parseDecimal(s: string, from = 0, to = s.length): number {
  let start = from;
  let end = to;
  while (start < end && isBlankChar(s.charCodeAt(start))) start++;
  while (end > start && isBlankChar(s.charCodeAt(end - 1))) end--;
  if (start === end) return NaN;

  let i = start;
  let c = s.charCodeAt(i);
  const negative = c === MINUS;
  if (c === PLUS || c === MINUS) i++;
  let digits = 0;
  let mantissa = 0;
  while (i < end && isDigit((c = s.charCodeAt(i)))) {
    mantissa = mantissa * 10 + (c - ZERO);
    i++;
    digits++;
  }
  let fractionDigits = 0;
  if (i < end && s.charCodeAt(i) === DOT) {
    i++;
    while (i < end && isDigit((c = s.charCodeAt(i)))) {
      mantissa = mantissa * 10 + (c - ZERO);
      i++;
      fractionDigits++;
    }
    digits += fractionDigits;
  }
  if (digits === 0) return NaN;
  let exponent = 0;
  if (i < end && (s.charCodeAt(i) | 0x20) === LOWER_E) {
    i++;
    c = s.charCodeAt(i);
    const negativeExponent = c === MINUS;
    if (i < end && (c === PLUS || c === MINUS)) i++;
    let exponentDigits = 0;
    while (i < end && isDigit((c = s.charCodeAt(i)))) {
      if (exponent < 100_000) exponent = exponent * 10 + (c - ZERO);
      i++;
      exponentDigits++;
    }
    if (exponentDigits === 0) return NaN;
    if (negativeExponent) exponent = -exponent;
  }
  if (i !== end) return NaN;

  const power = exponent - fractionDigits;
  if (mantissa <= Number.MAX_SAFE_INTEGER && power >= -22 && power <= 22) {
    const magnitude = power >= 0 ? mantissa * EXACT_POWERS_OF_TEN[power] : mantissa / EXACT_POWERS_OF_TEN[-power];
    return negative ? -magnitude : magnitude;
  }
  const value = Number(start === 0 && end === s.length ? s : s.slice(start, end));
  return Number.isFinite(value) ? value : NaN;
}

/** min, max, mean and population standard deviation of one column. */
export interface ColumnStats {
  name: string;
  min: number;
  max: number;
  mean: number;
  std: number;
}

/**
 * Running min, max, mean and variance of several columns that all receive one value per row, in
 * one pass and in float64 (Welford's algorithm: no sum of squares, so no catastrophic cancellation
 * when the mean is large next to the spread).
 */
export class RunningStats {
  private readonly mean: Float64Array;
  private readonly m2: Float64Array;
  private readonly min: Float64Array;
  private readonly max: Float64Array;

  constructor(readonly width: number) {
    this.mean = new Float64Array(width);
    this.m2 = new Float64Array(width);
    this.min = new Float64Array(width).fill(Infinity);
    this.max = new Float64Array(width).fill(-Infinity);
  }

  /** Adds `value` to column `col`; `count` is that column's number of values including this one. */
  add(col: number, value: number, count: number): void {
    const mean = this.mean[col];
    const delta = value - mean;
    const nextMean = mean + delta / count;
    this.mean[col] = nextMean;
    this.m2[col] += delta * (value - nextMean);
    if (value < this.min[col]) this.min[col] = value;
    if (value > this.max[col]) this.max[col] = value;
  }

  /** The statistics of every column, named in order; `count` is the number of values per column. */
  summarize(names: readonly string[], count: number): ColumnStats[] {
    return names.map((name, col) => ({
      name,
      min: this.min[col],
      max: this.max[col],
      mean: this.mean[col],
      std: count > 0 ? Math.sqrt(this.m2[col] / count) : 0,
    }));
  }
}
