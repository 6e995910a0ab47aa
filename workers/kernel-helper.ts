// A kernel helper thread (see kernel-pool.ts): instantiates the training thread's WebAssembly kernels
// module on the shared arena memory and runs the ranges it is handed until told to quit. It never
// grows or frees the arena: its GEMM work and scratch areas come in the control block, anything it
// allocates itself comes from the stretch the pool reserved for it (arena.ts: adoptArena), and a
// model replica's buffers from the region reserved with the request (data-parallel.ts), whose
// batches come as chunks that any thread may claim.
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { ReplicaRunner } from "../src/trainer/data-parallel.js";
import { MAX_ARGS, TASK_QUIT, TASK_REPLICA_BUILD, TASK_REPLICA_STEP, type ReplicaRequest } from "../src/trainer/parallel.js";
import { adoptArena, withArenaRegion } from "../src/trainer/wasm/arena.js";
import { instantiateKernels, useKernels } from "../src/trainer/wasm/instance.js";
import { rangePasses, runRangeTask } from "../src/trainer/wasm/wasm-kernels.js";
import {
  claimOwned,
  claimRange,
  controlLength,
  ctrlWork,
  ctrlSlots,
  fargsView,
  rangeDone,
  resultsView,
  timesView,
  CTRL_ARGS,
  CTRL_BOUNDS,
  CTRL_CHUNKS,
  CTRL_ERRORS,
  CTRL_GEN,
  CTRL_SLEEPERS,
  CTRL_TASK,
  CTRL_TICKET,
  FIXED_TICKET,
  OWNED_TICKET,
  HELPER_SPIN_MS,
  spinWhile,
  type HelperData,
} from "./kernel-pool.js";

const { module, memory, controlAt, helpers, index, heapAt, heapBytes } = workerData as HelperData;
adoptArena(memory, heapAt, heapBytes);
const w = instantiateKernels(module, memory);
useKernels(module, w);
const passes = rangePasses(w);
const control = new Int32Array(memory.buffer, controlAt, controlLength(helpers));
const args = control.subarray(CTRL_ARGS, CTRL_ARGS + MAX_ARGS);
const fargs = fargsView(control);
const results = resultsView(control, helpers);
const times = timesView(control, helpers);
const slot = ctrlSlots(helpers) + 2 * index;
/** This helper's place among the pool's threads (the training thread is 0). */
const thread = index + 1;
const threadWork = new Float64Array(memory.buffer, controlAt + 4 * ctrlWork(helpers), helpers + 1);
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

function runTask(task: number, at: number, r0: number, r1: number, fresh: boolean): void {
  if (task === TASK_REPLICA_BUILD) {
    replica = null;
    const request = takeReplicaRequest();
    replica = ReplicaRunner.build(request, (fn) => withArenaRegion(request.regionAt, request.regionBytes, fn));
  } else if (task === TASK_REPLICA_STEP) {
    if (!replica) throw new Error("no replica was built");
    results[at] = replica.stepChunk(args, at, r0, r1);
  } else if (r1 > r0) {
    runRangeTask(w, passes, task, args, fargs, r0, r1, control[slot], control[slot + 1], fresh);
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
  if (control[CTRL_TASK] === TASK_QUIT) break;
  // The task is read only once the ticket shows that it is still running: a helper that wakes late
  // may find a later task being written.
  const t = Atomics.load(control, CTRL_TICKET);
  if (t >>> 8 !== (gen & 0xffffff)) continue;
  if ((t & 0xff) === FIXED_TICKET) {
    // This helper's own range (the training thread waits for it, so the task is still this one).
    runRange(control[CTRL_TASK], index + 1);
  } else if ((t & 0xff) === OWNED_TICKET) {
    // Its own pieces, then what is left of the others' (each claim succeeds only while its task runs).
    const since = performance.now();
    let fresh = true;
    for (let at = claimOwned(control, gen, thread, helpers + 1); at >= 0; at = claimOwned(control, gen, thread, helpers + 1)) {
      runRange(control[CTRL_TASK], at, since, fresh);
      fresh = false;
    }
  } else {
    // Ranges until none is left (the task is read after each claim: a claim only succeeds while
    // the task it was made for is still running).
    for (let at = claimRange(control, gen); at >= 0; at = claimRange(control, gen)) runRange(control[CTRL_TASK], at);
  }
}

/**
 * Runs range `at` of the current task and counts it done, whatever happens. A piece of a task of
 * owned pieces comes with when this helper began to claim (`since`): its busy time so far and what
 * it has done go to its own figures (kernel-pool.ts: rangeTimes); and with whether it is this
 * helper's first (`fresh`): the pieces after the first reuse what the first packed (gemm_keep).
 */
function runRange(task: number, at: number, since = -1, fresh = true): void {
  const chunks = control[CTRL_CHUNKS];
  const began = performance.now();
  const r0 = control[CTRL_BOUNDS + at];
  const r1 = control[CTRL_BOUNDS + at + 1];
  try {
    runTask(task, at, r0, r1, fresh);
  } catch (err) {
    Atomics.add(control, CTRL_ERRORS, 1);
    parentPort!.postMessage({ error: err instanceof Error ? err.message : String(err) });
  } finally {
    if (since < 0) times[at] = performance.now() - began;
    else {
      times[thread] = performance.now() - since;
      threadWork[thread] += r1 - r0;
    }
    rangeDone(control, chunks);
  }
}
