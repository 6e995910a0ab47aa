// A reading of our weights files that shares no code with the trainer: the safetensors layout read
// by hand (8-byte header length, JSON header, raw little-endian float32) into float64, and a dense
// layer in float64. What the tests compare the service's own numbers against.
import { expect } from "vitest";

export type Tensor = { shape: number[]; data: Float64Array };

export function readSafetensors(buf: Buffer): { metadata: Record<string, string>; tensors: Record<string, Tensor> } {
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  const tensors: Record<string, Tensor> = {};
  for (const [name, info] of Object.entries<any>(header)) {
    if (name === "__metadata__") continue;
    expect(info.dtype).toBe("F32");
    const [begin, end] = info.data_offsets;
    const count = info.shape.reduce((a: number, b: number) => a * b, 1);
    expect(end - begin).toBe(count * 4);
    const data = new Float64Array(count);
    for (let i = 0; i < count; i++) data[i] = buf.readFloatLE(8 + n + begin + 4 * i);
    tensors[name] = { shape: info.shape, data };
  }
  return { metadata: header.__metadata__ as Record<string, string>, tensors };
}

/** A dense layer in float64 from PyTorch-layout tensors: out = W x + b, W is [out, in]. */
export function dense(x: number[], w: Tensor, b: Pick<Tensor, "data">): number[] {
  const [units, inFeatures] = w.shape;
  const out: number[] = [];
  for (let u = 0; u < units; u++) {
    let s = b.data[u];
    for (let i = 0; i < inFeatures; i++) s += w.data[u * inFeatures + i] * x[i];
    out.push(s);
  }
  return out;
}
