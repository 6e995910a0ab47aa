// How far apart the machine's two cores are right now: the round trip of one value between two
// threads, each spinning on a cache line the other writes (`coreRoundTrip`).
//
// Why the bench measures it: on the virtual machines this runs on, the host moves the two vCPUs
// between physical cores, and for seconds or minutes at a time they sit far apart (seen here: a
// round trip of about 100 ns for a while, then about 500 ns). Two single-thread processes do not
// care, as they share nothing; one job on two threads does, as every cache line one thread writes
// and the other reads next has to cross. So the 2-thread ratio of a round depends on where the host
// had put the cores, and the ceiling report gives each round's round trip beside its figures.
import { Worker } from "node:worker_threads";

/** The echoing thread: copies slot 0 to slot 16 (another cache line) until slot 0 is -1. */
const ECHO = `
const { workerData } = require("node:worker_threads");
const flags = new Int32Array(workerData);
for (;;) {
  const v = Atomics.load(flags, 0);
  if (v < 0) break;
  if (v !== Atomics.load(flags, 16)) Atomics.store(flags, 16, v);
}
`;

/** Round trips per timed batch (the clock is read once a batch). */
const BATCH = 100;

/**
 * The median round trip, in nanoseconds, over `batches` batches of BATCH round trips between this
 * thread and a new one (both spinning: it takes two cores for a few milliseconds). null when the
 * other thread did not answer within `timeoutMs` (no second core to be had).
 */
export async function coreRoundTrip(batches = 200, timeoutMs = 2000): Promise<number | null> {
  const flags = new Int32Array(new SharedArrayBuffer(4 * 32));
  const worker = new Worker(ECHO, { eval: true, workerData: flags.buffer });
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  const deadline = performance.now() + timeoutMs;
  /** Sends v and waits for its echo; false past the deadline. */
  const ping = (v: number): boolean => {
    Atomics.store(flags, 0, v);
    while (Atomics.load(flags, 16) !== v) {
      if ((v & 63) === 0 && performance.now() > deadline) return false;
    }
    return true;
  };
  const times: number[] = [];
  try {
    // The worker starts up in its own time: wait for the first echo off the clock (yielding, so
    // that its start is not held up by this thread's spinning).
    Atomics.store(flags, 0, 1);
    while (Atomics.load(flags, 16) !== 1) {
      if (performance.now() > deadline) return null;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    let v = 1;
    for (let b = 0; b < batches; b++) {
      const start = performance.now();
      for (let i = 0; i < BATCH; i++) if (!ping(++v)) return null;
      times.push(((performance.now() - start) * 1e6) / BATCH);
    }
  } finally {
    Atomics.store(flags, 0, -1);
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 1000))]);
    await worker.terminate();
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}
