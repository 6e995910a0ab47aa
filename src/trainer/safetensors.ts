// The weights file format: safetensors (https://huggingface.co/docs/safetensors), which PyTorch,
// JAX and others load without running code. Layout:
//   8 bytes   N, the header length, unsigned little-endian 64-bit
//   N bytes   UTF-8 JSON: { "__metadata__": { string: string }, "<name>": { "dtype": "F32",
//             "shape": [...], "data_offsets": [begin, end] }, ... }, padded with spaces so the data
//             starts at a multiple of 8
//   the data  each tensor's little-endian float32 values, packed in header order; offsets are
//             relative to the start of this section
// We only write F32, so we only read F32.
import { lossSpec, type JobConfig } from "./config.js";

export interface SafetensorsTensor {
  dtype: "F32";
  shape: number[];
  data: Float32Array;
}

export interface DecodedSafetensors {
  metadata: Record<string, string>;
  tensors: Record<string, SafetensorsTensor>;
}

/** The reference implementation refuses headers above 100 MB; so do we. */
const MAX_HEADER_BYTES = 100_000_000;

export function encodeSafetensors(
  tensors: { name: string; shape: number[]; data: Float32Array }[],
  metadata: Record<string, string>,
): Uint8Array {
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== "string") throw new Error(`safetensors: metadata "${key}" must be a string`);
  }
  // Built from entries (not by assignment) so that any name, even "__proto__", is an own key.
  const entries: [string, unknown][] = [["__metadata__", metadata]];
  const names = new Set<string>();
  let offset = 0;
  for (const { name, shape, data } of tensors) {
    if (name === "" || name === "__metadata__" || names.has(name)) {
      throw new Error(`safetensors: invalid or duplicate tensor name "${name}"`);
    }
    if (!shape.every(isCount) || product(shape) !== data.length) {
      throw new Error(`safetensors: tensor "${name}" has shape [${shape.join(", ")}] but ${data.length} values`);
    }
    names.add(name);
    entries.push([name, { dtype: "F32", shape, data_offsets: [offset, offset + data.length * 4] }]);
    offset += data.length * 4;
  }

  const json = new TextEncoder().encode(JSON.stringify(Object.fromEntries(entries)));
  const headerLength = json.length + ((8 - ((8 + json.length) % 8)) % 8);
  const bytes = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, headerLength, true); // the high 32 bits stay 0
  bytes.set(json, 8);
  bytes.fill(0x20, 8 + json.length, 8 + headerLength); // spaces: still valid JSON
  let at = 8 + headerLength;
  for (const { data } of tensors) {
    for (let i = 0; i < data.length; i++, at += 4) view.setFloat32(at, data[i], true);
  }
  return bytes;
}

export function decodeSafetensors(bytes: Uint8Array): DecodedSafetensors {
  if (bytes.length < 8) malformed(`${bytes.length} bytes is too short for the header length`);
  // DataView reads at any byte offset, so input that is not 4-aligned is fine; values are copied.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const low = view.getUint32(0, true);
  const high = view.getUint32(4, true);
  if (high !== 0 || low > MAX_HEADER_BYTES) malformed("the header length is implausibly large");
  if (8 + low > bytes.length) malformed(`the header claims ${low} bytes but the file has ${bytes.length - 8} after the length`);

  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + low)));
  } catch {
    malformed("the header is not UTF-8 JSON");
  }
  if (!isPlainObject(header)) malformed("the header is not a JSON object");

  const dataStart = 8 + low;
  const dataLength = bytes.length - dataStart;
  let metadata: Record<string, string> = {};
  const tensors: { name: string; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (!isPlainObject(entry)) malformed("__metadata__ is not an object");
      for (const [key, value] of Object.entries(entry)) {
        if (typeof value !== "string") malformed(`metadata "${key}" is not a string`);
      }
      // fromEntries, not assignment, so that even a key "__proto__" stays a plain own key.
      metadata = Object.fromEntries(Object.entries(entry)) as Record<string, string>;
      continue;
    }
    if (!isPlainObject(entry)) malformed(`tensor "${name}" is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (dtype !== "F32") malformed(`tensor "${name}" has dtype ${JSON.stringify(dtype)}; only F32 is supported`);
    if (!Array.isArray(shape) || !shape.every(isCount)) malformed(`tensor "${name}" has an invalid shape`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      malformed(`tensor "${name}" has invalid data_offsets`);
    }
    const [begin, end] = offsets;
    const size = product(shape) * 4;
    if (begin > end || end > dataLength) malformed(`tensor "${name}" lies outside the data section`);
    if (end - begin !== size) malformed(`tensor "${name}" spans ${end - begin} bytes but its shape needs ${size}`);
    tensors.push({ name, shape, begin, end });
  }

  // As the reference implementation: tensors must tile the data section exactly, no gaps or overlaps.
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin);
  let expected = 0;
  for (const { name, begin, end } of sorted) {
    if (begin !== expected) malformed(`tensor "${name}" starts at ${begin}, expected ${expected} (gap or overlap)`);
    expected = end;
  }
  if (expected !== dataLength) malformed(`the data section has ${dataLength} bytes but the tensors cover ${expected}`);

  const decoded = Object.fromEntries(
    tensors.map(({ name, shape, begin, end }) => {
      const data = new Float32Array((end - begin) / 4);
      for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(dataStart + begin + i * 4, true);
      return [name, { dtype: "F32" as const, shape, data }];
    }),
  );
  return { metadata, tensors: decoded };
}

/**
 * The `__metadata__` of a model's weights file, enough to rebuild the model without the job:
 * - format: "pt", which tells Hugging Face tooling the tensors follow PyTorch conventions
 * - model:  the model spec as JSON (layer i's tensors are named "<i>.weight", "<i>.bias")
 * - loss:   the loss name (cross_entropy and binary_cross_entropy models output logits: apply
 *           softmax or sigmoid to get probabilities)
 * - layout: a reminder of the tensor layouts
 * plus `extra` (e.g. job_id, epoch); the keys above cannot be overridden.
 */
export function modelMetadata(config: JobConfig, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...extra,
    format: "pt",
    model: JSON.stringify(config.model),
    loss: lossSpec(config.loss).type,
    layout: "PyTorch: dense weight [out_features, in_features], conv2d weight [out_channels, in_channels, kh, kw]",
  };
}

function malformed(why: string): never {
  throw new Error(`Malformed safetensors file: ${why}`);
}

function product(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
