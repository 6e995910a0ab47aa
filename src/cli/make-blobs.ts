// Writes the blob-count demo dataset (src/datasets/blobs.ts) as CSV, to stdout or to a file:
//
//   npx tsx src/cli/make-blobs.ts --rows 2000 --size 20 --max 4 --seed 1 [--noise 0.05] [--out blobs.csv]
//
// Upload it with `input_shape=1,<size>,<size>` and target `count` (regression, or task=classification
// for max + 1 classes). The file is streamed, so any number of rows runs in constant memory; with
// --out it is written beside the destination and renamed into place only when complete.
//
// Exit codes: 0 written, 1 could not write, 2 bad arguments (with usage on stderr).
import { createWriteStream } from "node:fs";
import { rename, unlink } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { blobsCsvLines, DEFAULT_BLOB_NOISE, validateBlobsOptions, type BlobsOptions } from "../datasets/blobs.js";

export const EXIT_OK = 0;
export const EXIT_WRITE_FAILED = 1;
export const EXIT_USAGE = 2;

export const USAGE = `Usage: make-blobs --rows N [--size 20] [--max 4] [--seed 1] [--noise ${DEFAULT_BLOB_NOISE}] [--out FILE]

Generates N size x size one-channel images with 0..max bright blobs each, as CSV with columns
p0..p{size*size-1} and the target "count". Writes to stdout unless --out is given.

  --rows N      number of images (required, >= 1)
  --size S      image side in pixels (default 20)
  --max M       largest blob count (default 4; each image draws 0..M uniformly)
  --seed K      integer seed in [0, 2^32) (default 1); the same seed gives the same file
  --noise SD    background noise standard deviation in [0, 1] (default ${DEFAULT_BLOB_NOISE})
  --out FILE    write to FILE instead of stdout
  --help        show this help
`;

export type ParsedArgs = { help: true } | { help: false; options: BlobsOptions; out: string | null };

/** Thrown for arguments that are wrong; the message says which and why. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Parses and validates the command line (without `node` and the script). */
export function parseMakeBlobsArgs(argv: string[]): ParsedArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        rows: { type: "string" },
        size: { type: "string" },
        max: { type: "string" },
        seed: { type: "string" },
        noise: { type: "string" },
        out: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return { help: true };
  if (values.rows === undefined) throw new UsageError("--rows is required.");
  const options: BlobsOptions = {
    rows: integerArg("rows", values.rows),
    size: integerArg("size", values.size ?? "20"),
    maxBlobs: integerArg("max", values.max ?? "4"),
    seed: integerArg("seed", values.seed ?? "1"),
    noise: numberArg("noise", values.noise ?? String(DEFAULT_BLOB_NOISE)),
  };
  try {
    validateBlobsOptions(options);
  } catch (err) {
    // Name the flag (--max) rather than the option (maxBlobs).
    throw new UsageError((err as Error).message.replace(/^maxBlobs\b/, "max").replace(/^(\w+) /, "--$1 "));
  }
  const out = typeof values.out === "string" ? values.out : null;
  if (out === "") throw new UsageError("--out needs a file name.");
  return { help: false, options, out };
}

function integerArg(name: string, raw: string | boolean): number {
  if (typeof raw !== "string" || !/^\d+$/.test(raw)) {
    throw new UsageError(`--${name} must be a non-negative integer, got ${JSON.stringify(raw)}.`);
  }
  return Number(raw);
}

function numberArg(name: string, raw: string | boolean): number {
  const value = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
  if (!Number.isFinite(value)) throw new UsageError(`--${name} must be a number, got ${JSON.stringify(raw)}.`);
  return value;
}

/** Streams the CSV to `out` (atomically: a temporary file renamed into place) or to stdout. */
export async function writeBlobs(options: BlobsOptions, out: string | null): Promise<void> {
  const lines = Readable.from(blobsCsvLines(options), { objectMode: false });
  if (out === null) {
    await pipeline(lines, process.stdout);
    return;
  }
  const target = path.resolve(out);
  const partial = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.partial`);
  try {
    await pipeline(lines, createWriteStream(partial));
    await rename(partial, target);
  } catch (err) {
    await unlink(partial).catch(() => undefined);
    throw err;
  }
}

export async function main(argv: string[]): Promise<number> {
  let parsed: ParsedArgs;
  try {
    parsed = parseMakeBlobsArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`make-blobs: ${err.message}\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  if (parsed.help) {
    process.stdout.write(USAGE);
    return EXIT_OK;
  }
  try {
    await writeBlobs(parsed.options, parsed.out);
    return EXIT_OK;
  } catch (err) {
    // A reader that stops early (`| head`) is not a failure of ours.
    if ((err as NodeJS.ErrnoException).code === "EPIPE") return EXIT_OK;
    process.stderr.write(`make-blobs: could not write ${parsed.out ?? "stdout"}: ${(err as Error).message}\n`);
    return EXIT_WRITE_FAILED;
  }
}

const invokedDirectly = process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`make-blobs: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = EXIT_WRITE_FAILED;
    },
  );
}
