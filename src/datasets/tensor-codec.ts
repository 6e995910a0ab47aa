// The binary tensor encoding of dataset chunks: float32, little-endian, row-major. It is the format
// of DatasetChunk.x and DatasetChunk.y, so it must not depend on the byte order of the host that
// wrote it or the one that reads it back.

/** True when this host stores numbers little-endian (every x86 and ARM host Node runs on today). */
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Encodes float32 values as little-endian bytes.
 *
 * On a little-endian host this is a view over `a`'s memory (no copy): do not change `a` afterwards
 * while the bytes are still in use. On a big-endian host it is a fresh, byte-swapped copy.
 */
export function float32ToBytes(a: Float32Array): Uint8Array {
  if (HOST_IS_LITTLE_ENDIAN) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return encodeFloat32LittleEndian(a);
}

/**
 * Decodes little-endian float32 bytes.
 *
 * On a little-endian host, when `b` starts on a 4-byte boundary, the result is a view over `b`'s
 * memory (no copy). Otherwise, e.g. for a Buffer from the pg driver that sits at an odd offset in
 * its pool, the bytes are copied into a new, aligned array.
 */
export function bytesToFloat32(b: Uint8Array): Float32Array {
  checkWholeFloats(b.byteLength);
  if (!HOST_IS_LITTLE_ENDIAN) return decodeFloat32LittleEndian(b);
  if (b.byteOffset % 4 === 0) return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  // Copy into a fresh buffer. Not `b.slice()`: on a Node Buffer that is a view, not a copy.
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return new Float32Array(copy.buffer);
}

/** The portable encoder (one DataView write per value), whatever the host's byte order. Always a copy. */
export function encodeFloat32LittleEndian(a: Float32Array): Uint8Array {
  const out = new Uint8Array(a.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) view.setFloat32(i * 4, a[i], true);
  return out;
}

/** The portable decoder (one DataView read per value), whatever the host's byte order or the alignment. Always a copy. */
export function decodeFloat32LittleEndian(b: Uint8Array): Float32Array {
  checkWholeFloats(b.byteLength);
  const out = new Float32Array(b.byteLength / 4);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

function checkWholeFloats(byteLength: number): void {
  if (byteLength % 4 !== 0) throw new Error(`${byteLength} bytes is not a whole number of float32 values (4 bytes each)`);
}

/** One stored chunk of a dataset, as read back from the database. */
export interface StoredChunk {
  rows: number;
  x: Uint8Array;
  y: Uint8Array;
}

/**
 * Concatenates a dataset's chunks (already in index order) into one x and one y array for training.
 * Each array is allocated once, at its final size, and every chunk is copied straight into it.
 * A chunk whose byte lengths do not match its row count and the widths throws: a dataset that
 * does not add up must never reach the trainer.
 */
export function assembleRows(chunks: StoredChunk[], inputWidth: number, targetWidth: number): { x: Float32Array; y: Float32Array; rows: number } {
  if (!Number.isInteger(inputWidth) || inputWidth < 1) throw new Error(`inputWidth must be a positive integer, got ${inputWidth}`);
  if (!Number.isInteger(targetWidth) || targetWidth < 1) throw new Error(`targetWidth must be a positive integer, got ${targetWidth}`);

  let rows = 0;
  chunks.forEach((chunk, i) => {
    if (!Number.isInteger(chunk.rows) || chunk.rows < 0) throw new Error(`chunk ${i}: rows must be a non-negative integer, got ${chunk.rows}`);
    const xBytes = chunk.rows * inputWidth * 4;
    const yBytes = chunk.rows * targetWidth * 4;
    if (chunk.x.byteLength !== xBytes) {
      throw new Error(`chunk ${i}: x has ${chunk.x.byteLength} bytes, expected ${xBytes} (${chunk.rows} rows x ${inputWidth} inputs x 4 bytes)`);
    }
    if (chunk.y.byteLength !== yBytes) {
      throw new Error(`chunk ${i}: y has ${chunk.y.byteLength} bytes, expected ${yBytes} (${chunk.rows} rows x ${targetWidth} targets x 4 bytes)`);
    }
    rows += chunk.rows;
  });

  const x = new Float32Array(rows * inputWidth);
  const y = new Float32Array(rows * targetWidth);
  let row = 0;
  for (const chunk of chunks) {
    copyInto(x, row * inputWidth, chunk.x);
    copyInto(y, row * targetWidth, chunk.y);
    row += chunk.rows;
  }
  return { x, y, rows };
}

/** Copies little-endian float32 bytes into `dest` starting at element `at`, for any alignment of `src`. */
function copyInto(dest: Float32Array, at: number, src: Uint8Array): void {
  if (HOST_IS_LITTLE_ENDIAN) {
    // A byte copy: works whatever src's offset, and is a plain memcpy.
    new Uint8Array(dest.buffer, dest.byteOffset, dest.byteLength).set(src, at * 4);
  } else {
    dest.set(decodeFloat32LittleEndian(src), at);
  }
}
