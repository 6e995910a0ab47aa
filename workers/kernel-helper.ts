// A kernel helper thread (see kernel-pool.ts): instantiates the training thread's WebAssembly kernels
// module on the shared arena memory and runs the ranges it is handed until told to quit. It never
// allocates from the arena: its work and scratch areas come in the control block.
import { parentPort, workerData } from "node:worker_threads";
import { MAX_ARGS, TASK_QUIT } from "../src/trainer/parallel.js";
import { instantiateKernels } from "../src/trainer/wasm/instance.js";
import { rangePasses, runRangeTask } from "../src/trainer/wasm/wasm-kernels.js";
import { controlLength, fargsView, CTRL_ARGS, CTRL_ERRORS, CTRL_GEN, CTRL_PENDING, CTRL_MAIN_WAITING, CTRL_SLEEPERS, CTRL_SLOTS, CTRL_TASK, HELPER_SPIN_MS, spinWhile, type HelperData } from "./kernel-pool.js";

const { module, memory, controlAt, helpers, index } = workerData as HelperData;
const w = instantiateKernels(module, memory);
const passes = rangePasses(w);
const control = new Int32Array(memory.buffer, controlAt, controlLength(helpers));
const args = control.subarray(CTRL_ARGS, CTRL_ARGS + MAX_ARGS);
const fargs = fargsView(control);
const slot = CTRL_SLOTS + 4 * index;

parentPort!.postMessage("ready");

let seen = 0;
for (;;) {
  let gen = spinWhile(control, CTRL_GEN, seen, HELPER_SPIN_MS);
  if (gen === seen) {
    // Announce the sleep, then look once more (see KernelPool.start), then sleep.
    Atomics.add(control, CTRL_SLEEPERS, 1);
    if (Atomics.load(control, CTRL_GEN) === seen) Atomics.wait(control, CTRL_GEN, seen);
    Atomics.sub(control, CTRL_SLEEPERS, 1);
    continue;
  }
  seen = gen;
  const task = control[CTRL_TASK];
  if (task === TASK_QUIT) break;
  try {
    const r0 = control[slot];
    const r1 = control[slot + 1];
    if (r1 > r0) runRangeTask(w, passes, task, args, fargs, r0, r1, control[slot + 2], control[slot + 3]);
  } catch (err) {
    Atomics.add(control, CTRL_ERRORS, 1);
    parentPort!.postMessage({ error: err instanceof Error ? err.message : String(err) });
  } finally {
    if (Atomics.sub(control, CTRL_PENDING, 1) === 1 && Atomics.load(control, CTRL_MAIN_WAITING) !== 0) Atomics.notify(control, CTRL_PENDING);
  }
}
