import { describe, expect, it } from "vitest";
import {
  assembleRows,
  bytesToFloat32,
  decodeFloat32LittleEndian,
  encodeFloat32LittleEndian,
  float32ToBytes,
} from "../../../src/datasets/index.js";

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");

/** `bytes` copied to an odd offset of a larger buffer, as a pg Buffer from a shared pool may be. */
function atOddOffset(bytes: Uint8Array): Uint8Array {
  const backing = new Uint8Array(bytes.length + 7);
  const view = backing.subarray(3, 3 + bytes.length);
  view.set(bytes);
  return view;
}

describe("float32 little-endian encoding", () => {
  it("writes IEEE 754 little-endian bytes, checked by hand", () => {
    // 1.0f = 0x3f800000, -2.5f = 0xc0200000, 0.1f = 0x3dcccccd: least significant byte first.
    const bytes = float32ToBytes(new Float32Array([1, -2.5, 0.1]));
    expect(hex(bytes)).toBe("00 00 80 3f 00 00 20 c0 cd cc cc 3d");
    expect(hex(encodeFloat32LittleEndian(new Float32Array([1, -2.5, 0.1])))).toBe(hex(bytes));
    expect(Array.from(bytesToFloat32(new Uint8Array([0x00, 0x00, 0x80, 0x3f])))).toEqual([1]);
  });

  it("round-trips every kind of value bit for bit", () => {
    const values = new Float32Array([0, -0, 1, -1, Math.PI, 3.4028234663852886e38, 1.401298464324817e-45, Infinity, -Infinity, NaN]);
    const back = bytesToFloat32(float32ToBytes(values));
    expect(back).toHaveLength(values.length);
    values.forEach((v, i) => expect(Object.is(back[i], v)).toBe(true));
    expect(Array.from(decodeFloat32LittleEndian(encodeFloat32LittleEndian(values)))).toEqual(Array.from(values));
  });

  it("reads bytes that start at an offset that is not a multiple of 4", () => {
    const values = new Float32Array([1.5, -2, 1e-3, 12345.678]);
    const unaligned = atOddOffset(float32ToBytes(values).slice());
    expect(unaligned.byteOffset % 4).not.toBe(0);
    expect(Array.from(bytesToFloat32(unaligned))).toEqual(Array.from(values));
    expect(Array.from(decodeFloat32LittleEndian(unaligned))).toEqual(Array.from(values));
    // A Node Buffer at an odd offset, the way pg hands bytea columns over.
    const buffer = Buffer.concat([Buffer.from([9]), Buffer.from(float32ToBytes(values))]).subarray(1);
    expect(Array.from(bytesToFloat32(buffer))).toEqual(Array.from(values));
  });

  it("rejects a byte count that is not a multiple of 4", () => {
    expect(() => bytesToFloat32(new Uint8Array(7))).toThrow(/7 bytes/);
  });
});

describe("assembleRows", () => {
  const chunk = (rows: number, x: number[], y: number[]) => ({
    rows,
    x: float32ToBytes(new Float32Array(x)),
    y: float32ToBytes(new Float32Array(y)),
  });

  it("concatenates chunks in order, aligned or not", () => {
    const first = chunk(2, [1, 2, 3, 4, 5, 6], [10, 20]);
    const second = chunk(1, [7, 8, 9], [30]);
    const third = { rows: 2, x: atOddOffset(float32ToBytes(new Float32Array([10, 11, 12, 13, 14, 15]))), y: atOddOffset(float32ToBytes(new Float32Array([40, 50]))) };
    const { x, y, rows } = assembleRows([first, second, third], 3, 1);
    expect(rows).toBe(5);
    expect(Array.from(x)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    expect(Array.from(y)).toEqual([10, 20, 30, 40, 50]);
  });

  it("handles no chunks", () => {
    expect(assembleRows([], 4, 2)).toEqual({ x: new Float32Array(0), y: new Float32Array(0), rows: 0 });
  });

  it("throws a clear error when a chunk's bytes do not match its rows and widths", () => {
    const good = chunk(1, [1, 2], [3]);
    expect(() => assembleRows([good, chunk(2, [1, 2, 3], [1, 2])], 2, 1)).toThrow(
      "chunk 1: x has 12 bytes, expected 16 (2 rows x 2 inputs x 4 bytes)",
    );
    expect(() => assembleRows([good, chunk(1, [1, 2], [3, 4])], 2, 1)).toThrow(
      "chunk 1: y has 8 bytes, expected 4 (1 rows x 1 targets x 4 bytes)",
    );
    expect(() => assembleRows([good], 0, 1)).toThrow(/inputWidth/);
  });
});
