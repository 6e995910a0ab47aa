// Runs trainings on threads, so the worker's event loop stays free for BullMQ's lock renewal, cancel
// polling and persistence.
//
// Threads are kept and reused: booting one (registering tsx, loading the trainer) costs about a
// second, more than a small job's whole training. A thread that ended its run by itself (`done` or
// `error`) goes back to the idle pool; one that had to be terminated, or crashed, is discarded.
//
// Epoch reports are handled strictly in order, one batch at a time: whatever arrived while the
// previous batch was being written goes in the next one. The trainer may outrun the database (a W1
// epoch takes ~0.1 s, its checkpoint write as long or longer, much longer during an outage), so a
// waiting report gives up its weights and state as soon as a newer one supersedes them: only the
// newest `last` and the newest `best` are ever written, and memory stays bounded however long the
// database is away.
import { Worker } from "node:worker_threads";
import { StopFlag, type SerializedError, type ThreadMessage, type ThreadStart } from "./messages.js";
import { weightsToKeep } from "../src/trainer/retention.js";

export type EpochMessage = Extract<ThreadMessage, { type: "epoch" }>;
export type DoneMessage = Extract<ThreadMessage, { type: "done" }>;

/** An epoch report waiting to be written; superseded reports keep only their metrics. */
export interface PendingEpoch {
  report: EpochMessage["report"];
  /** Kept on the newest report and on those the checkpoint retention may keep (the newest new best among them). */
  weights: Uint8Array | null;
  /** Kept on the newest report only. */
  state: Uint8Array | null;
}

/** An error raised inside the training thread, carried across the boundary. */
export class ThreadError extends Error {
  readonly code?: string;
  constructor(e: SerializedError) {
    super(e.message);
    this.name = e.name;
    this.code = e.code;
    if (e.stack) this.stack = e.stack;
  }
}

export interface TrainingRun {
  /** Settles after the last epoch report has been handled. */
  done: Promise<DoneMessage>;
  /** Asks the thread to stop before its next batch (`done` then says `cancelled`). */
  stop(): void;
  /** Asks the thread to stop once the current epoch is reported (unless stop() comes first). */
  stopAtEpochEnd(): void;
  /** From now on, write the epochs still waiting without their checkpoints (metrics only): for a
   *  cancel or a time limit, which should end promptly and keep the checkpoints already written. */
  skipPendingCheckpoints(): void;
  /** Ends the run at once if it has not ended (its thread is then discarded). */
  terminate(): Promise<void>;
}

// The thread runs TypeScript like the rest of the process. Node 20 does not carry tsx's module
// hooks into worker threads, so a one-line bootstrap registers them there before loading thread.ts.
const THREAD_BOOT = new URL(
  "data:text/javascript," +
    encodeURIComponent(
      `import { register } from ${JSON.stringify(import.meta.resolve("tsx/esm/api"))}; register();` +
        `await import(${JSON.stringify(new URL("./thread.ts", import.meta.url).href)});`,
    ),
);

/** Booted training threads waiting for a run. */
export class ThreadPool {
  private readonly idle = new Set<Worker>();
  private closed = false;

  /** @param keepIdle most idle threads kept (a worker's concurrency). */
  constructor(private readonly keepIdle: number) {}

  /** Boots threads ahead of the first job, up to keepIdle. */
  prewarm(): void {
    while (!this.closed && this.idle.size < this.keepIdle) this.release(this.boot());
  }

  acquire(): Worker {
    const [thread] = this.idle;
    if (thread) {
      this.idle.delete(thread);
      return thread;
    }
    return this.boot();
  }

  /** Takes back a thread whose run ended by itself. */
  release(thread: Worker): void {
    if (this.closed || this.idle.size >= this.keepIdle) {
      void thread.terminate();
      return;
    }
    this.idle.add(thread);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.idle].map((t) => t.terminate()));
    this.idle.clear();
  }

  private boot(): Worker {
    const thread = new Worker(THREAD_BOOT);
    // An idle thread that dies (it should not) is simply forgotten.
    thread.on("exit", () => this.idle.delete(thread));
    thread.on("error", () => this.idle.delete(thread));
    // Idle threads must not keep the process alive.
    thread.unref();
    return thread;
  }
}

/** Drops the buffers no write will need: all but the newest state, and the weights the job's
 *  checkpoint retention may still keep (src/trainer/retention.ts). */
function shed(pending: PendingEpoch[], config: ThreadStart["config"]): void {
  const newest = pending.length - 1;
  const keep = weightsToKeep(config, pending.map((p) => p.report));
  for (let i = 0; i < newest; i++) {
    pending[i].state = null;
    if (!keep[i]) pending[i].weights = null;
  }
}

export function startTraining(
  pool: ThreadPool,
  start: Omit<ThreadStart, "stopFlag">,
  onEpochs: (batch: PendingEpoch[]) => Promise<void>,
): TrainingRun {
  const stopFlag = new SharedArrayBuffer(4);
  const flag = new Int32Array(stopFlag);
  const buffers = new Set<ArrayBuffer>();
  for (const set of [start.train, start.val]) {
    if (set) for (const a of [set.x, set.y]) if (a.buffer instanceof ArrayBuffer) buffers.add(a.buffer);
  }
  if (start.resume && start.resume.buffer instanceof ArrayBuffer && start.resume.byteLength === start.resume.buffer.byteLength) {
    buffers.add(start.resume.buffer);
  }
  const thread = pool.acquire();
  thread.ref();

  let chain: Promise<void> = Promise.resolve();
  let settled = false;
  let metricsOnly = false;
  const pending: PendingEpoch[] = [];
  // Retention is applied to the whole backlog whenever it has doubled since the last time: a fast
  // trainer (tiny epochs) can queue thousands of epochs behind one database write, and a full pass
  // per message would make each message cost as much as the backlog (quadratic in all).
  let shedAt = 2;
  const flush = async () => {
    if (pending.length === 0 || settled) return;
    const batch = pending.splice(0);
    shedAt = 2;
    shed(batch, start.config);
    if (metricsOnly) for (const p of batch) p.weights = p.state = null;
    await onEpochs(batch);
  };

  let fail: (err: Error) => void = () => undefined;
  const done = new Promise<DoneMessage>((resolve, reject) => {
    /** Ends the run; the thread goes back to the pool only if it finished by itself. */
    const settle = (reusable: boolean) => {
      settled = true;
      thread.off("message", onMessage);
      thread.off("error", onError);
      thread.off("exit", onExit);
      thread.unref();
      if (reusable) pool.release(thread);
      else void thread.terminate();
    };
    fail = (err: Error) => {
      if (settled) return;
      settle(false);
      reject(err);
    };
    const onMessage = (m: ThreadMessage) => {
      if (m.type === "epoch") {
        // Only the newest epoch's resume state is ever written.
        if (pending.length > 0) pending[pending.length - 1].state = null;
        pending.push({ report: m.report, weights: m.weights, state: m.state });
        if (pending.length >= shedAt) {
          shed(pending, start.config);
          shedAt = pending.length * 2;
        }
        chain = chain.then(flush).catch((err: Error) => fail(err));
      } else if (m.type === "done") {
        chain = chain.then(() => {
          if (settled) return;
          settle(true);
          resolve(m);
        });
      } else {
        chain = chain.then(() => {
          if (settled) return;
          settle(true);
          reject(new ThreadError(m.error));
        });
      }
    };
    const onError = (err: Error) => fail(err);
    // The thread never exits by itself: an exit mid-run is a crash.
    const onExit = (code: number) => void chain.then(() => fail(new Error(`training thread exited with code ${code} before finishing`)));
    thread.on("message", onMessage);
    thread.on("error", onError);
    thread.on("exit", onExit);
  });

  // Whoever awaits `done` sees its rejection; a run terminated after its caller gave up on it must
  // not surface as an unhandled rejection.
  done.catch(() => undefined);
  thread.postMessage({ ...start, stopFlag } satisfies ThreadStart, [...buffers]);

  return {
    done,
    stop: () => Atomics.store(flag, 0, StopFlag.now),
    // Never weakens a `now` already given.
    stopAtEpochEnd: () => void Atomics.compareExchange(flag, 0, StopFlag.run, StopFlag.atEpochEnd),
    skipPendingCheckpoints: () => {
      metricsOnly = true;
    },
    terminate: async () => fail(new Error("training run terminated")),
  };
}
