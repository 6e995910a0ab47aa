// The trainer's snapshot (TrainerSnapshot: weights, optimizer moments, schedule, RNG states,
// early-stopping copies of the weights) as bytes for a checkpoint row, and back, exactly. The
// worker stores it without the weights (workers/thread.ts), which the row holds already.
//
// The bytes are a safetensors file, so any safetensors reader can open a checkpoint's state:
//   - every typed array in the snapshot becomes a 1-D tensor named by its path in the snapshot
//     (e.g. `optimizer.tensors.momentum`), in its own dtype (F32, F64, I32, U32, ...);
//   - everything else (the skeleton: shapes, names, counters, RNG words) is JSON in
//     `__metadata__.snapshot`, with each typed array replaced by `{ "$tensor": name }` and each number
//     JSON cannot carry (Infinity, NaN, -0) by `{ "$number": "Infinity" }`.
// Tensors are packed widest element first, so each one starts aligned for its type. Values are
// copied byte for byte (little-endian hosts only, checked below), so a round trip is bit-exact.
// No Node-only imports: this runs in the training thread.

const FORMAT = "trainhub-snapshot/1";

type TypedArray =
  | Float64Array
  | Float32Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

type TypedArrayConstructor = { new (buffer: ArrayBuffer): TypedArray; readonly BYTES_PER_ELEMENT: number };

/** safetensors dtype names, widest first (the packing order). */
const DTYPES: [string, TypedArrayConstructor][] = [
  ["F64", Float64Array],
  ["F32", Float32Array],
  ["I32", Int32Array],
  ["U32", Uint32Array],
  ["I16", Int16Array],
  ["U16", Uint16Array],
  ["I8", Int8Array],
  ["U8", Uint8Array],
];

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("snapshot-codec: this host is big-endian; checkpoints are little-endian");
}

function dtypeOf(a: ArrayBufferView): [string, TypedArrayConstructor] {
  for (const entry of DTYPES) if (a instanceof entry[1]) return entry;
  throw new Error(`snapshot-codec: unsupported array type ${a.constructor.name}`);
}

interface PendingTensor {
  name: string;
  dtype: string;
  width: number;
  bytes: Uint8Array;
}

/** Encodes a snapshot (any tree of plain objects, arrays, numbers, strings, booleans, null and
 *  typed arrays) as a safetensors file. */
export function encodeSnapshot(value: unknown): Uint8Array {
  const tensors: PendingTensor[] = [];
  const skeleton = toSkeleton(value, "", tensors);
  tensors.sort((a, b) => b.width - a.width);

  const header: Record<string, unknown> = { __metadata__: { format: FORMAT, snapshot: JSON.stringify(skeleton) } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: [t.bytes.byteLength / t.width], data_offsets: [offset, offset + t.bytes.byteLength] };
    offset += t.bytes.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // The data section starts at a multiple of 8 (spaces pad the header, which stays valid JSON).
  const headerLength = json.length + ((8 - ((8 + json.length) % 8)) % 8);
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const t of tensors) {
    out.set(t.bytes, at);
    at += t.bytes.byteLength;
  }
  return out;
}

function toSkeleton(v: unknown, path: string, tensors: PendingTensor[]): unknown {
  if (typeof v === "number") {
    return Number.isFinite(v) && !Object.is(v, -0) ? v : { $number: Object.is(v, -0) ? "-0" : String(v) };
  }
  if (v === null || typeof v === "string" || typeof v === "boolean") return v;
  if (ArrayBuffer.isView(v)) {
    const [dtype, ctor] = dtypeOf(v);
    const name = path === "" ? "$" : path;
    // A copy of exactly this view's bytes (the view may sit inside a larger buffer).
    tensors.push({ name, dtype, width: ctor.BYTES_PER_ELEMENT, bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice() });
    return { $tensor: name };
  }
  if (Array.isArray(v)) return v.map((item, i) => toSkeleton(item, join(path, String(i)), tensors));
  if (typeof v === "object" && v !== undefined) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(v as Record<string, unknown>)) {
      if (key.startsWith("$")) throw new Error(`snapshot-codec: keys may not start with "$" (${join(path, key)})`);
      if (item === undefined) continue;
      out[key] = toSkeleton(item, join(path, key), tensors);
    }
    return out;
  }
  throw new Error(`snapshot-codec: cannot encode a ${typeof v} at ${path || "the root"}`);
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/** Decodes what encodeSnapshot wrote. Every typed array is a fresh, aligned copy. */
export function decodeSnapshot<T>(bytes: Uint8Array): T {
  if (bytes.byteLength < 8) throw new Error("snapshot-codec: too short");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (8 + headerLength > bytes.byteLength) throw new Error("snapshot-codec: the header runs past the end");
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, unknown>;
  const meta = header.__metadata__ as { format?: string; snapshot?: string } | undefined;
  if (!meta || meta.format !== FORMAT || typeof meta.snapshot !== "string") {
    throw new Error(`snapshot-codec: not a ${FORMAT} file`);
  }
  const dataStart = 8 + headerLength;
  const ctors = new Map(DTYPES);
  const tensor = (name: string): TypedArray => {
    const entry = header[name] as { dtype: string; data_offsets: [number, number] } | undefined;
    const ctor = entry && ctors.get(entry.dtype);
    if (!entry || !ctor) throw new Error(`snapshot-codec: tensor "${name}" is missing or has an unknown dtype`);
    const [begin, end] = entry.data_offsets;
    if (end < begin || dataStart + end > bytes.byteLength || (end - begin) % ctor.BYTES_PER_ELEMENT !== 0) {
      throw new Error(`snapshot-codec: tensor "${name}" lies outside the data`);
    }
    // slice() copies into a fresh buffer, aligned whatever the source's byteOffset.
    return new ctor(bytes.slice(dataStart + begin, dataStart + end).buffer);
  };
  return fromSkeleton(JSON.parse(meta.snapshot), tensor) as T;
}

function fromSkeleton(v: unknown, tensor: (name: string) => TypedArray): unknown {
  if (Array.isArray(v)) return v.map((item) => fromSkeleton(item, tensor));
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (typeof o.$tensor === "string") return tensor(o.$tensor);
    if (typeof o.$number === "string") return Number(o.$number);
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(o)) out[key] = fromSkeleton(item, tensor);
    return out;
  }
  return v;
}
