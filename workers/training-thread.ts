// Runs one training on its own thread, so the worker's event loop stays free for BullMQ's lock
// renewal and for persistence. Epoch reports are handled strictly in order, one at a time.
import { Worker } from "node:worker_threads";
import type { SerializedError, ThreadMessage, ThreadStart } from "./messages.js";

export type EpochMessage = Extract<ThreadMessage, { type: "epoch" }>;
export type DoneMessage = Extract<ThreadMessage, { type: "done" }>;

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
  /** Asks the thread to stop between batches. */
  stop(): void;
  /** Ends the thread at once. */
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

export function startTraining(start: Omit<ThreadStart, "stopFlag">, onEpoch: (m: EpochMessage) => Promise<void>): TrainingRun {
  const stopFlag = new SharedArrayBuffer(4);
  const buffers = new Set<ArrayBuffer>();
  for (const set of [start.train, start.val]) {
    if (set) for (const a of [set.x, set.y]) if (a.buffer instanceof ArrayBuffer) buffers.add(a.buffer);
  }
  const thread = new Worker(THREAD_BOOT, {
    workerData: { ...start, stopFlag } satisfies ThreadStart,
    transferList: [...buffers],
  });

  let chain: Promise<void> = Promise.resolve();
  const done = new Promise<DoneMessage>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      void thread.terminate();
      reject(err);
    };
    thread.on("message", (m: ThreadMessage) => {
      if (m.type === "epoch") {
        chain = chain.then(() => onEpoch(m)).catch((err: Error) => fail(err));
      } else if (m.type === "done") {
        chain = chain.then(() => {
          if (!settled) {
            settled = true;
            resolve(m);
          }
        });
      } else {
        chain = chain.then(() => fail(new ThreadError(m.error)));
      }
    });
    thread.on("error", (err) => fail(err));
    thread.on("exit", (code) => {
      // A clean exit comes after `done`; wait for the chain before judging.
      void chain.then(() => fail(new Error(`training thread exited with code ${code} before finishing`)));
    });
  });

  return {
    done,
    stop: () => Atomics.store(new Int32Array(stopFlag), 0, 1),
    terminate: async () => {
      await thread.terminate();
    },
  };
}
