import { describe, expect, it } from "vitest";
import {
  buildModel,
  decodeSafetensors,
  encodeSafetensors,
  modelMetadata,
  modelSchema,
  type ModelSpec,
} from "../../../src/trainer/index.js";
import { bytesOf, makeConfig } from "./helpers.js";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** A file with the given header JSON (unpadded) and data bytes, for hand-made malformed inputs. */
function rawFile(header: string, data: number[] = [], headerLength?: number): Uint8Array {
  const json = new TextEncoder().encode(header);
  const bytes = new Uint8Array(8 + json.length + data.length);
  new DataView(bytes.buffer).setUint32(0, headerLength ?? json.length, true);
  bytes.set(json, 8);
  bytes.set(data, 8 + json.length);
  return bytes;
}

describe("encodeSafetensors", () => {
  it("writes the exact byte layout", () => {
    const bytes = encodeSafetensors([{ name: "a", shape: [2], data: new Float32Array([1, -2]) }], { k: "v" });
    // The header JSON is
    //   {"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}
    // 1 + 14 + 1 + 9 + 1 + 3 + 1 + 1 + 7 + 1 + 5 + 1 + 7 + 1 + 3 + 1 + 14 + 1 + 5 + 1 + 1 = 79 bytes.
    // 8 + 79 = 87 is padded with one space to 88, a multiple of 8, so N = 80; then 2 floats: 96 bytes.
    expect(bytes.length).toBe(96);
    expect(Array.from(bytes.subarray(0, 8))).toEqual([80, 0, 0, 0, 0, 0, 0, 0]);
    expect(text(bytes.subarray(8, 88))).toBe('{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} ');
    // 1.0f = 0x3F800000 and -2.0f = 0xC0000000, little-endian.
    expect(Array.from(bytes.subarray(88))).toEqual([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]);
  });

  it("packs tensors in order with offsets relative to the data section", () => {
    const bytes = encodeSafetensors(
      [
        { name: "w", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
        { name: "b", shape: [1], data: new Float32Array([5]) },
      ],
      {},
    );
    const n = new DataView(bytes.buffer).getUint32(0, true);
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(text(bytes.subarray(8, 8 + n)));
    expect(header).toEqual({
      __metadata__: {},
      w: { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] },
      b: { dtype: "F32", shape: [1], data_offsets: [16, 20] },
    });
    expect(Object.keys(header)).toEqual(["__metadata__", "w", "b"]);
    expect(bytes.length).toBe(8 + n + 20);
    expect(new DataView(bytes.buffer).getFloat32(8 + n + 16, true)).toBe(5);
  });

  it("pads with 0 to 7 spaces, whatever the header's length", () => {
    const paddings = new Set<number>();
    // Eight consecutive name lengths give every header length modulo 8.
    for (let name = "x"; name.length <= 8; name += "x") {
      const bytes = encodeSafetensors([{ name, shape: [1], data: new Float32Array([1]) }], {});
      const n = new DataView(bytes.buffer).getUint32(0, true);
      expect((8 + n) % 8).toBe(0);
      const header = text(bytes.subarray(8, 8 + n));
      paddings.add(header.length - header.trimEnd().length);
    }
    expect([...paddings].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it("refuses bad input", () => {
    const one = new Float32Array([1]);
    expect(() => encodeSafetensors([{ name: "a", shape: [2], data: one }], {})).toThrow(/shape \[2\] but 1 values/);
    expect(() => encodeSafetensors([{ name: "a", shape: [1], data: one }, { name: "a", shape: [1], data: one }], {})).toThrow(/duplicate/);
    expect(() => encodeSafetensors([{ name: "__metadata__", shape: [1], data: one }], {})).toThrow(/invalid/);
  });
});

describe("decodeSafetensors", () => {
  const tensors = [
    { name: "0.weight", shape: [2, 3], data: new Float32Array([0.1, -0.2, 0.3, 1e-30, -0, 3.4e38]) },
    { name: "0.bias", shape: [2], data: new Float32Array([NaN, -Infinity]) },
    { name: "scalar", shape: [], data: new Float32Array([7]) },
    { name: "empty", shape: [0, 4], data: new Float32Array(0) },
  ];

  it("round-trips tensors bit for bit, and the metadata", () => {
    const decoded = decodeSafetensors(encodeSafetensors(tensors, { format: "pt", note: "ünïcode" }));
    expect(decoded.metadata).toEqual({ format: "pt", note: "ünïcode" });
    expect(Object.keys(decoded.tensors)).toEqual(tensors.map((t) => t.name));
    for (const t of tensors) {
      const got = decoded.tensors[t.name];
      expect(got.dtype).toBe("F32");
      expect(got.shape).toEqual(t.shape);
      expect(bytesOf(got.data)).toEqual(bytesOf(t.data));
    }
  });

  it("reads input that does not start on a 4-byte boundary", () => {
    const bytes = encodeSafetensors(tensors, {});
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    const decoded = decodeSafetensors(shifted.subarray(3));
    expect(bytesOf(decoded.tensors["0.weight"].data)).toEqual(bytesOf(tensors[0].data));
    expect(decoded.tensors["0.weight"].data.byteOffset % 4).toBe(0);
  });

  it("accepts a file without __metadata__", () => {
    const decoded = decodeSafetensors(rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', [0, 0, 0x80, 0x3f]));
    expect(decoded.metadata).toEqual({});
    expect(Array.from(decoded.tensors.a.data)).toEqual([1]);
  });

  it.each([
    ["too short", new Uint8Array(5), /too short/],
    ["header longer than the file", rawFile("{}", [], 100), /claims 100 bytes/],
    ["huge header length", (() => { const b = rawFile("{}"); b[7] = 1; return b; })(), /implausibly large/],
    ["not JSON", rawFile("{nope"), /not UTF-8 JSON/],
    ["invalid UTF-8", rawFile("{}").map((v, i) => (i === 8 ? 0xff : v)), /not UTF-8 JSON/],
    ["not an object", rawFile("[1,2]"), /not a JSON object/],
    ["non-string metadata", rawFile('{"__metadata__":{"epoch":3}}'), /metadata "epoch" is not a string/],
    ["other dtype", rawFile('{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}', [0, 0, 0, 0]), /dtype "F16"/],
    ["bad shape", rawFile('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', [0, 0, 0, 0]), /invalid shape/],
    ["size mismatch", rawFile('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', [0, 0, 0, 0]), /spans 4 bytes.*needs 8/],
    ["beyond the data", rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', [0, 0, 0, 0]), /outside the data section/],
    ["reversed offsets", rawFile('{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}', [0, 0, 0, 0]), /outside the data section/],
    ["missing offsets", rawFile('{"a":{"dtype":"F32","shape":[1]}}', [0, 0, 0, 0]), /invalid data_offsets/],
    [
      "overlap",
      rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0]),
      /gap or overlap/,
    ],
    ["a gap", rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', [0, 0, 0, 0, 0, 0, 0, 0]), /starts at 4, expected 0/],
    ["trailing bytes", rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0, 9]), /has 5 bytes but the tensors cover 4/],
  ])("rejects a malformed file: %s", (_, bytes, message) => {
    expect(() => decodeSafetensors(bytes)).toThrow(/^Malformed safetensors file: /);
    expect(() => decodeSafetensors(bytes)).toThrow(message);
  });
});

describe("model weights as safetensors", () => {
  const spec: ModelSpec = {
    layers: [
      { type: "dense", units: 5, activation: "sigmoid" },
      { type: "dense", units: 2, activation: "linear" },
    ],
  };

  it("a model exported, encoded, decoded and imported predicts identically", () => {
    const config = makeConfig({ model: spec, loss: "mse" });
    const source = buildModel(spec, 3, { seed: 11 });
    const file = encodeSafetensors(source.exportTensors(), modelMetadata(config, { epoch: "4" }));
    const decoded = decodeSafetensors(file);
    expect(decoded.tensors["0.weight"].shape).toEqual([5, 3]);
    expect(decoded.tensors["1.weight"].shape).toEqual([2, 5]);

    // A reader rebuilds the model from the metadata alone.
    const target = buildModel(modelSchema.parse(JSON.parse(decoded.metadata.model)), 3, { seed: 99 });
    target.importTensors(decoded.tensors);
    const x = new Float32Array([0.3, -1, 2, 4, 0, -0.5]);
    expect(bytesOf(target.predict(x, 2))).toEqual(bytesOf(source.predict(x, 2)));
  });

  it("modelMetadata describes the model, and extra keys cannot override it", () => {
    const config = makeConfig({ model: spec, loss: "mse" });
    expect(modelMetadata(config, { epoch: "3", loss: "hacked" })).toEqual({
      epoch: "3",
      format: "pt",
      model: JSON.stringify(config.model),
      loss: "mse",
      layout: "PyTorch: dense weight [out_features, in_features], conv2d weight [out_channels, in_channels, kh, kw]",
    });
  });
});
