// A kernel helper thread (see kernel-pool.ts): instantiates the training thread's WebAssembly kernels
// module on the shared arena memory and runs the ranges it is handed until told to quit. It never
// grows or frees the arena: its GEMM work and scratch areas come in the control block, anything it
// allocates itself comes from the stretch the pool reserved for it (arena.ts: adoptArena), and a
// model replica's buffers from the region reserved with the request (data-parallel.ts).
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { ReplicaRunner } from "../src/trainer/data-parallel.js";
import { MAX_ARGS, TASK_QUIT, TASK_REPLICA_BUILD, TASK_REPLICA_STEP, type ReplicaRequest } from "../src/trainer/parallel.js";
import { adoptArena, arenaAddress, withArenaRegion } from "../src/trainer/wasm/arena.js";
import { instantiateKernels, useKernels } from "../src/trainer/wasm/instance.js";
import { rangePasses, runRangeTask } from "../src/trainer/wasm/wasm-kernels.js";
import { controlLength, fargsView, resultsView, CTRL_ARGS, CTRL_ERRORS, CTRL_GEN, CTRL_PENDING, CTRL_MAIN_WAITING, CTRL_SLEEPERS, CTRL_SLOTS, CTRL_TASK, HELPER_SPIN_MS, spinWhile, type HelperData } from "./kernel-pool.js";

const { module, memory, controlAt, helpers, index, heapAt, heapBytes } = workerData as HelperData;
adoptArena(memory, heapAt, heapBytes);
const w = instantiateKernels(module, memory);
useKernels(module, w);
const passes = rangePasses(w);
const control = new Int32Array(memory.buffer, controlAt, controlLength(helpers));
const args = control.subarray(CTRL_ARGS, CTRL_ARGS + MAX_ARGS);
const fargs = fargsView(control);
const results = resultsView(control, helpers);
const slot = CTRL_SLOTS + 4 * index;
/** This helper's replica of the model being trained (data-parallel steps), once built. */
let replica: ReplicaRunner | null = null;

/** The replica request posted just before TASK_REPLICA_BUILD (the pool posts, then starts the task;
 *  the message is normally queued already, but is waited for up to a few seconds). */
function takeReplicaRequest(): ReplicaRequest {
  const until = performance.now() + 5_000;
  for (;;) {
    const message = receiveMessageOnPort(parentPort!);
    const body = message?.message as { replica?: ReplicaRequest } | undefined;
    if (body?.replica) return body.replica;
    if (performance.now() > until) throw new Error("no replica request arrived");
  }
}

function runTask(task: number, r0: number, r1: number): void {
  if (task === TASK_REPLICA_BUILD) {
    replica = null;
    const request = takeReplicaRequest();
    replica = ReplicaRunner.build(request, (fn) => withArenaRegion(request.regionAt, request.regionBytes, fn));
    results[index] = arenaAddress(replica.replica.model.grads as Float32Array);
  } else if (task === TASK_REPLICA_STEP) {
    if (!replica) throw new Error("no replica was built");
    results[index] = r1 > r0 ? replica.step(args[0], args[1], r0, r1, args[2]) : 0;
  } else if (r1 > r0) {
    runRangeTask(w, passes, task, args, fargs, r0, r1, control[slot + 2], control[slot + 3]);
  }
}

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
    runTask(task, control[slot], control[slot + 1]);
  } catch (err) {
    Atomics.add(control, CTRL_ERRORS, 1);
    parentPort!.postMessage({ error: err instanceof Error ? err.message : String(err) });
  } finally {
    if (Atomics.sub(control, CTRL_PENDING, 1) === 1 && Atomics.load(control, CTRL_MAIN_WAITING) !== 0) Atomics.notify(control, CTRL_PENDING);
  }
}
