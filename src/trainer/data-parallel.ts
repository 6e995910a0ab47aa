// One training step's gradient pass (forward in training mode, loss, backward), on one thread or
// shared out over the job's threads by rows of the batch.
//
// With helper threads (parallel.ts: a ParallelExecutor is installed) and a model whose rows are
// independent of each other, each helper keeps a replica of the model: the same layers over the
// SAME parameters (in the shared arena), with gradients and activations of its own, sized for one
// chunk. A step cuts the batch into chunks of rows (chunkRowsFor: by the batch size and the model
// alone) and wakes the helpers once: this thread trains chunk 0 on the model itself, and then each
// thread, this one on a replica of its own, claims the next chunk whenever it is free, trains it,
// and copies its gradients to that chunk's slot. A core the host slows down for a while thus trains
// fewer chunks instead of holding the other up (measured on W2 with 2 threads: the training thread
// had waited 1-3 ms of each 12-16 ms step for the helper with one fixed share each; 0.1-0.25 ms with
// chunks). Then the slots are added into the model's gradients in chunk order (split over the
// threads too) and the optimizer steps as usual (its loop split too when large). Three hand-offs a
// step instead of one per large kernel, and no activation ever crosses between cores. Batches under
// MIN_SHARED_MACS stay on one thread, and models that use each parameter fewer than MIN_PARAM_REUSE
// times a batch (dense nets at batches under 256) keep the single-thread pass with the kernels
// split, where fewer bytes cross the cores.
//
// The result is the single-thread one to float32 rounding, not bit for bit: each row's loss
// gradient is the same value (Loss.evaluate's meanRows), but a weight's gradient is a sum over the
// rows, and it is now added up chunk by chunk. Which thread trains a chunk changes nothing, so the
// result is the same bit for bit for any number of threads from 2 up. Models with dropout (masks
// drawn in row order from the model's stream) or batchnorm (statistics of the whole batch) keep the
// single-thread pass, where the kernels split the large products instead, bit for bit.
import type { Floats } from "./kernels.js";
import { createLoss, type Loss } from "./losses.js";
import { buildModel, type Model } from "./model.js";
import {
  parallelExecutor,
  setParallelExecutor,
  TASK_ADD_GRADS,
  TASK_REPLICA_BUILD,
  TASK_REPLICA_STEP,
  MAX_ARGS,
  MAX_REPLICA_CHUNKS,
  type ParallelExecutor,
  type ReplicaRequest,
} from "./parallel.js";
import type { LossConfig } from "./schema/loss.js";
import type { ModelSpec } from "./config.js";
import { allocFloat32, arenaAddress, arenaView, measureAllocations } from "./wasm/arena.js";
import { kernelExports, type KernelExports } from "./wasm/instance.js";
import { addGradSlots, VALUE_PIECE } from "./wasm/wasm-kernels.js";

/** Whether each row's gradients depend on that row alone, so a batch can be shared out by rows:
 *  no dropout, no batchnorm. */
export function splitsBatches(spec: ModelSpec): boolean {
  return spec.layers.every((layer) => layer.type !== "dropout" && layer.type !== "batchnorm");
}

/** Multiply-adds of one row's forward pass: each weight once per position it is applied at (a
 *  dense weight once, a convolution's once per output position). The backward pass costs about
 *  twice as much. */
export function forwardMacsPerRow(model: Model): number {
  let macs = 0;
  for (const layer of model.layers) {
    if (layer.paramCount > 0) macs += layer.paramCount * (layer.outWidth / layer.outShape[0]);
  }
  return macs;
}

/**
 * Batches with fewer forward multiply-adds than this train on one thread: sharing one out costs
 * three hand-offs between threads (tens of microseconds), more than a small model's step gains
 * (W3, 8-32-32-1 at batch 32, has 42k; W1 at batch 64, 15M). By the batch's size, not by a timing,
 * so that a job's threads make the same choice on every machine and its results stay reproducible.
 */
export const MIN_SHARED_MACS = 1 << 20;

/**
 * Rows are shared out only when the batch uses each parameter at least this many times (forward
 * multiply-adds ÷ parameters); below it the single-thread pass runs, with its large products
 * split over the threads. A data-parallel step sends every parameter across the cores:
 * each thread reads all the weights, half of which the other core has just updated, and the
 * replicas' gradients cross to be added. The split kernels send only activations and part of the
 * weights. A dense layer uses a weight once per row, so a dense net's reuse is its batch size; a
 * convolution uses each weight at every output position (W2 at batch 64: 3,360). Measured on a
 * 2-core machine in one process, the two ways taking turns every 20 steps against one thread
 * (means of the trials' medians): W1 (dense) at batch 64, 1.74x one thread split by kernels
 * against 1.66x by rows (kernels no worse in 14 of 14 trials); at 128, 1.85x against 1.79x; at
 * 256, level. W2 (CNN): 1.88x by rows against 1.84x.
 * Dense nets below 256 rows a batch therefore train bit for bit as on one thread. By sizes, not by
 * timings, like MIN_SHARED_MACS.
 */
export const MIN_PARAM_REUSE = 256;

/** Whether a batch of `rows` rows uses `model`'s parameters often enough to share its rows out. */
export function reusesParams(model: Model, rows: number): boolean {
  return rows * forwardMacsPerRow(model) >= MIN_PARAM_REUSE * model.params.length;
}

export interface GradientPass {
  /**
   * Forward (training mode), loss and backward of the first `rows` rows of x and y: fills
   * model.grads (dLoss/dParams of the batch's mean loss) and returns that loss.
   */
  run(x: Floats, y: Floats, rows: number): number;
  /** Threads sharing each batch's rows: 1 when the model trains on this thread alone. */
  readonly threads: number;
}

/** The pass on this thread alone (the kernels may still split large products over helpers). */
function localPass(model: Model, loss: Loss, lossGrad: Floats): GradientPass {
  return {
    threads: 1,
    run(x, y, rows) {
      const output = model.forward(x, rows, true);
      const batchLoss = loss.evaluate(output, y, rows, model.outputWidth, lossGrad);
      model.backward(lossGrad, rows);
      return batchLoss;
    },
  };
}

/** A replica: what a helper trains its rows on. */
export interface Replica {
  model: Model;
  loss: Loss;
  lossGrad: Float32Array;
  /** Rows its buffers hold: a chunk's. */
  capacity: number;
}

/** The replica `request` describes, on the parameters `params`. The training thread builds one
 *  too, for its own chunks after its first, and measures from it the arena bytes a helper's will
 *  need (arena.ts: measureAllocations). */
export function createReplica(request: ReplicaRequest, params: Float32Array): Replica {
  const model = buildModel(request.spec, request.inputWidth, {
    seed: 0,
    foldOutput: request.foldOutput ?? undefined,
    sharedParams: params,
  });
  model.reserve(request.capacity);
  const lossGrad = allocFloat32(request.capacity * model.outputWidth);
  return { model, loss: createLoss(request.loss), lossGrad, capacity: request.capacity };
}

/** A replica at work: the model's on a helper, or the training thread's own for the chunks after
 *  its first. Keeps its views of the batch's chunks and of their gradient slots (kept while the
 *  batch buffers stay where they are, so that a step allocates nothing). */
export class ReplicaRunner {
  private readonly targetWidth: number;
  private readonly xs: (Float32Array | null)[] = [];
  private readonly ys: (Float32Array | null)[] = [];
  private readonly slots: (Float32Array | null)[] = [];

  constructor(readonly replica: Replica) {
    this.targetWidth = replica.loss.targetWidth(replica.model.outputWidth);
  }

  /** Builds the replica a request describes, inside its region of the arena (a helper thread,
   *  which adopted the training thread's arena). */
  static build(request: ReplicaRequest, inRegion: <T>(fn: () => T) => T): ReplicaRunner {
    const params = arenaView(request.paramsAt, request.paramCount);
    if (!params) throw new Error("replica: the parameters are outside the arena");
    const replica = inRegion(() => createReplica(request, params));
    if (arenaAddress(replica.model.grads) < 0 || arenaAddress(replica.lossGrad) < 0) {
      throw new Error("replica: its region of the arena is too small");
    }
    return new ReplicaRunner(replica);
  }

  /** Chunk `at` (>= 1), rows [r0, r1) of the batch TASK_REPLICA_STEP's `args` describe: forward,
   *  loss, backward, and the chunk's gradients copied to its slot. Returns the chunk's part of the
   *  batch's mean loss. */
  stepChunk(args: Int32Array, at: number, r0: number, r1: number): number {
    const { model, loss, lossGrad, capacity } = this.replica;
    const n = r1 - r0;
    if (at < 1 || n > capacity) throw new Error(`replica: chunk ${at} of ${n} rows cannot be trained here`);
    const x = this.view(this.xs, at, args[0] + 4 * r0 * model.inputWidth, n * model.inputWidth);
    const y = this.view(this.ys, at, args[1] + 4 * r0 * this.targetWidth, n * this.targetWidth);
    const output = model.forward(x, n, true);
    const part = loss.evaluate(output, y, n, model.outputWidth, lossGrad, args[2]);
    model.backward(lossGrad, n);
    const grads = model.grads as Float32Array;
    this.view(this.slots, at, args[3] + 4 * (at - 1) * grads.length, grads.length).set(grads);
    return part;
  }

  private view(kept: (Float32Array | null)[], at: number, address: number, length: number): Float32Array {
    const old = kept[at];
    if (old && old.byteOffset === address && old.length === length) return old;
    const view = arenaView(address, length);
    if (!view) throw new Error("replica: the batch or a gradient slot is outside the arena");
    kept[at] = view;
    return view;
  }
}

/** Arena bytes a replica's region gets beyond what building one measured (views are 64-byte
 *  aligned the same way on both threads; this is only a margin). */
const REGION_MARGIN = 4096;

/**
 * A chunk uses each parameter at least this many times (forward multiply-adds ÷ parameters): its
 * gradients are copied to a slot and added up once more, which costs a few passes over the
 * parameters. W2 (a CNN) uses each parameter about 52 times a row, W1's dense net once.
 */
export const MIN_CHUNK_REUSE = 64;
/** Most floats the chunks' gradient slots of one pass take (64 MB). */
const MAX_SLOT_FLOATS = 1 << 24;

/**
 * The rows of each chunk a data-parallel batch of up to `capacity` rows is cut into: at most
 * MAX_REPLICA_CHUNKS chunks, each using every parameter MIN_CHUNK_REUSE times, and no more gradient
 * slots than MAX_SLOT_FLOATS hold. By sizes alone, never by the threads: a batch's gradients are
 * added up the same way whatever the thread count (2 or more) and whichever thread trains which
 * chunk. Small chunks cost a CNN nothing: W2 on one thread ran 8-12% faster per row in chunks of 2
 * to 16 rows than at 64 (its activations then stay in the core's cache).
 */
export function chunkRowsFor(model: Model, capacity: number): number {
  const params = model.params.length;
  const reuseRows = Math.ceil((MIN_CHUNK_REUSE * params) / Math.max(1, forwardMacsPerRow(model)));
  const slotRows = Math.ceil(capacity / (1 + Math.floor(MAX_SLOT_FLOATS / Math.max(1, params))));
  return Math.max(1, Math.ceil(capacity / MAX_REPLICA_CHUNKS), reuseRows, slotRows);
}

/**
 * The gradient pass for `model` trained with `loss` on batches of up to `capacity` rows, writing
 * loss gradients into `lossGrad`: shared out over the installed executor's threads when the model
 * allows (splitsBatches) and everything lives in the arena, else on this thread.
 */
export function createGradientPass(model: Model, loss: Loss, lossConfig: LossConfig, lossGrad: Floats, capacity: number): GradientPass {
  const local = localPass(model, loss, lossGrad);
  const ex = parallelExecutor();
  const w = kernelExports();
  const params = model.params;
  const paramsAt = params instanceof Float32Array ? arenaAddress(params) : -1;
  const gradsAt = model.grads instanceof Float32Array ? arenaAddress(model.grads) : -1;
  if (!ex || !w || paramsAt < 0 || gradsAt < 0 || !splitsBatches(model.spec)) return local;
  if (capacity * forwardMacsPerRow(model) < MIN_SHARED_MACS || !reusesParams(model, capacity)) return local;
  const chunkRows = chunkRowsFor(model, capacity);
  const chunks = Math.ceil(capacity / chunkRows);
  if (chunks < 2 || chunks > MAX_REPLICA_CHUNKS || chunks - 1 > MAX_ARGS - 2) return local;
  const slots = allocFloat32((chunks - 1) * params.length);
  const slotsAt = arenaAddress(slots);
  if (slotsAt < 0) return local;

  const request: ReplicaRequest = {
    spec: model.spec,
    inputWidth: model.inputWidth,
    foldOutput: model.outputActivation,
    loss: lossConfig,
    capacity: chunkRows,
    paramsAt,
    paramCount: params.length,
    regionAt: 0,
    regionBytes: 0,
  };
  // This thread's own replica, for the chunks after its first; building it measures the arena bytes
  // a helper's will need.
  let replica: Replica | null = null;
  const bytes = measureAllocations(() => void (replica = createReplica(request, params as Float32Array))) + REGION_MARGIN;
  const own = new ReplicaRunner(replica!);
  const helpers = ex.threads - 1;
  // Held by the pass: a region must outlive its replica's use. All are reserved before any
  // request is posted: a helper takes the oldest request it has, so none may be left unbuilt.
  const regions: Float32Array[] = [];
  for (let i = 0; i < helpers; i++) {
    const region = allocFloat32(bytes / 4);
    if (arenaAddress(region) < 0) return local;
    regions.push(region);
  }
  for (let i = 0; i < helpers; i++) ex.postReplica(i, { ...request, regionAt: arenaAddress(regions[i]), regionBytes: bytes });
  ex.start(TASK_REPLICA_BUILD, ex.threads, 1, 0);
  try {
    ex.finish();
  } catch {
    // A helper could not build its replica (it says why in its error): train on this thread, as
    // a model that cannot be shared out does; the kernels still split large products.
    return local;
  }
  return new DataParallelPass(model, loss, lossGrad, ex, w, gradsAt, { own, chunkRows, slots, slotsAt, regions }, local);
}

/** What a data-parallel pass holds besides the model: its own replica, its chunks' size, their
 *  gradient slots (one per chunk after the first, whose gradients go to the model's), and the
 *  helpers' arena regions (which must outlive their replicas' use). */
interface Chunking {
  own: ReplicaRunner;
  chunkRows: number;
  slots: Float32Array;
  slotsAt: number;
  regions: Float32Array[];
}

class DataParallelPass implements GradientPass {
  readonly threads: number;
  private readonly macsPerRow: number;

  constructor(
    private readonly model: Model,
    private readonly loss: Loss,
    private readonly lossGrad: Floats,
    private readonly ex: ParallelExecutor,
    private readonly w: KernelExports,
    private readonly gradsAt: number,
    readonly chunking: Chunking,
    private readonly local: GradientPass,
  ) {
    this.threads = ex.threads;
    this.macsPerRow = forwardMacsPerRow(model);
  }

  run(x: Floats, y: Floats, rows: number): number {
    const ex = this.ex;
    const xAt = x instanceof Float32Array ? arenaAddress(x) : -1;
    const yAt = y instanceof Float32Array ? arenaAddress(y) : -1;
    const { own, chunkRows, slotsAt } = this.chunking;
    // (A small batch, or one outside the arena, or another executor installed: on this thread.)
    const small = rows <= chunkRows || rows * this.macsPerRow < MIN_SHARED_MACS;
    if (small || xAt < 0 || yAt < 0 || parallelExecutor() !== ex) return this.local.run(x, y, rows);
    const { model, loss, lossGrad } = this;
    const args = ex.args;
    args[0] = xAt;
    args[1] = yAt;
    args[2] = rows;
    args[3] = slotsAt;
    ex.start(TASK_REPLICA_STEP, rows, chunkRows, 0);
    const results = ex.results;
    // This thread's chunks run with no executor: their kernels must not hand work to the helpers,
    // which are busy with chunks of their own. Its first chunk (chunk 0, always this thread's) is
    // trained on the model itself, whose gradients are the batch's sum; any later ones on its
    // replica, like the helpers'.
    setParallelExecutor(null);
    try {
      while (ex.claim()) {
        if (ex.at === 0) {
          const output = model.forward(x, ex.to, true);
          results[0] = loss.evaluate(output, y, ex.to, model.outputWidth, lossGrad, rows);
          model.backward(lossGrad, ex.to);
        } else {
          results[ex.at] = own.stepChunk(args, ex.at, ex.from, ex.to);
        }
      }
    } finally {
      setParallelExecutor(ex);
      ex.finish();
    }
    // The loss and the gradients, chunk after chunk in order, whoever trained them.
    const chunks = Math.ceil(rows / chunkRows);
    let batchLoss = 0;
    for (let c = 0; c < chunks; c++) batchLoss += results[c];
    const count = model.grads.length;
    args[0] = this.gradsAt;
    args[1] = chunks - 1;
    for (let c = 1; c < chunks; c++) args[1 + c] = slotsAt + 4 * (c - 1) * count;
    ex.start(TASK_ADD_GRADS, count, 16, 0, VALUE_PIECE);
    try {
      while (ex.claim()) addGradSlots(this.w, args, ex.from, ex.to);
    } finally {
      ex.finish();
    }
    return batchLoss;
  }
}
