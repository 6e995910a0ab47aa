// Child entry for TensorFlow.js 4.22: `node --import tsx test/bench/peers/tfjs.ts '<request>'`,
// peer "tfjs-cpu" (the pure-JS cpu backend) or "tfjs-wasm" (the WebAssembly backend, SIMD build,
// single-threaded: in Node the backend never uses its threaded build, and we pin XNNPACK's pool to
// one thread as well).
//
// The model is the workload's, built with tf.sequential / tf.layers, compiled with the same
// optimizer (tf.train.momentum is PyTorch's formulation: v = m·v + g; w -= lr·v) and loss
// (sparseCategoricalCrossentropy over a final softmax, or meanSquaredError), trained with
// model.trainOnBatch; inference is model.predict over the whole batch, with the result read back.
// Images are fed channels-last ([28, 28, 1]), TF.js's native layout; with one channel the bytes are
// the same.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { errorText, measure, runChild, type ChildRequest, type ChildResult } from "../protocol.js";
import { inputWidth, syntheticData, targetWidth, type BenchLayer, type Workload } from "../workloads.js";

async function selectBackend(peer: ChildRequest["peer"]): Promise<Record<string, string>> {
  if (peer === "tfjs-cpu") {
    await tf.setBackend("cpu");
    await tf.ready();
    return { backend: tf.getBackend() };
  }
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  const require = createRequire(import.meta.url);
  const dist = dirname(require.resolve("@tensorflow/tfjs-backend-wasm"));
  // The directory of the three binaries; the backend picks tfjs-backend-wasm-simd.wasm when SIMD is
  // supported and threads are not (we turn threads off explicitly; Node never has them anyway).
  wasm.setWasmPaths(join(dist, "/"));
  wasm.setThreadsCount(1);
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
  if (!(await tf.setBackend("wasm"))) throw new Error("the wasm backend did not initialise");
  await tf.ready();
  const simd = Boolean(await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT"));
  if (!simd) throw new Error("WebAssembly SIMD is not supported here: the wasm peer would run the scalar build");
  return {
    backend: tf.getBackend(),
    binary: "tfjs-backend-wasm-simd.wasm",
    simd: String(simd),
    xnnpackThreads: String(wasm.getThreadsCount()),
  };
}

function buildLayers(w: Workload): tf.Sequential {
  const model = tf.sequential();
  // Channels-last for TF.js: [C, H, W] -> [H, W, C].
  const shape = w.inputShape.length === 3 ? [w.inputShape[1], w.inputShape[2], w.inputShape[0]] : w.inputShape;
  w.layers.forEach((layer: BenchLayer, i) => {
    const first = i === 0 ? { inputShape: shape } : {};
    switch (layer.type) {
      case "dense":
        model.add(tf.layers.dense({ ...first, units: layer.units, activation: layer.activation }));
        break;
      case "conv2d":
        model.add(
          tf.layers.conv2d({
            ...first,
            filters: layer.filters,
            kernelSize: layer.kernel_size,
            strides: layer.stride,
            padding: layer.padding,
            activation: layer.activation,
          }),
        );
        break;
      case "maxpool2d":
        model.add(tf.layers.maxPooling2d({ ...first, poolSize: layer.pool_size }));
        break;
      case "flatten":
        model.add(tf.layers.flatten(first));
        break;
    }
  });
  const optimizer = w.optimizer.momentum > 0 ? tf.train.momentum(w.optimizer.lr, w.optimizer.momentum) : tf.train.sgd(w.optimizer.lr);
  model.compile({ optimizer, loss: w.loss === "cross_entropy" ? "sparseCategoricalCrossentropy" : "meanSquaredError" });
  return model;
}

async function main(request: ChildRequest): Promise<ChildResult> {
  const w = request.workload;
  if (request.threads !== 1) return { ok: false, status: "n/a", error: "TF.js backends here are single-threaded", info: {} };
  const info = { ...(await selectBackend(request.peer)), tfjs: tf.version.tfjs };
  const model = buildLayers(w);
  const data = syntheticData(w, request.seed);
  const width = inputWidth(w);
  const tw = targetWidth(w);
  const batch = w.batch;
  const batchShape = w.inputShape.length === 3 ? [batch, w.inputShape[1], w.inputShape[2], w.inputShape[0]] : [batch, width];
  // Every batch a tensor once, up front: the data is in memory, as for the other peers.
  const batches = Array.from({ length: Math.floor(data.rows / batch) }, (_, b) => ({
    x: tf.tensor(data.x.subarray(b * batch * width, (b + 1) * batch * width), batchShape, "float32"),
    y: tf.tensor2d(data.y.subarray(b * batch * tw, (b + 1) * batch * tw), [batch, tw], "float32"),
  }));
  let next = 0;
  const step =
    w.mode === "infer"
      ? () => {
          // The whole batch at once (predict's default batchSize is 32).
          const out = model.predict(batches[next++ % batches.length].x, { batchSize: batch }) as tf.Tensor;
          out.dataSync();
          out.dispose();
        }
      : async () => {
          const b = batches[next++ % batches.length];
          const loss = await model.trainOnBatch(b.x, b.y);
          if (!Number.isFinite(loss as number)) throw new Error(`${w.id}: the loss became ${String(loss)}`);
        };
  try {
    const measurement = await measure(step, batch, request.plan, request.barrier);
    return { ok: true, measurement, info: { ...info, tensorsAfter: String(tf.memory().numTensors) } };
  } catch (error) {
    // e.g. the wasm backend has no Conv2DBackpropFilter kernel: that peer cannot train W2.
    return { ok: false, status: "cannot", error: errorText(error), info };
  }
}

await runChild(main);
