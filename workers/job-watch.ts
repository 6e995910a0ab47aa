// What a worker process does for all the jobs it trains at once, on its event loop (the training
// itself runs on threads): it polls PostgreSQL for cancel requests every CANCEL_POLL_MS (one query
// for all its jobs), and records a heartbeat every HEARTBEAT_MS. The same poll notices a job that
// another worker has claimed since (this one was presumed dead: its lock or heartbeat lapsed), so
// that this one stops training it instead of racing the new owner. Polling the job row works across
// any number of API and worker processes with nothing but the database they already share, and a
// cancel written while a worker was picking the job up is seen either by the claim or by the next
// poll, so it cannot be lost.
import type { Db } from "../src/db/client.js";
import * as jobs from "../src/db/jobs.js";
import { errorText, type Logger } from "./log.js";

export class JobWatch {
  private readonly watched = new Map<string, { onCancel: () => void; onSuperseded: () => void }>();
  private pollTimer: NodeJS.Timeout | undefined;
  private beatTimer: NodeJS.Timeout | undefined;
  private stopped = true;
  /** Failing polls are logged once per outage, not every 200 ms. */
  private failing = false;

  constructor(
    private readonly db: Db,
    private readonly workerId: string,
    private readonly opts: { pollMs: number; heartbeatMs: number },
    private readonly log: Logger,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedulePoll();
    this.scheduleBeat();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.pollTimer);
    clearTimeout(this.beatTimer);
  }

  /**
   * Calls `onCancel` when the job gets a cancel request, or `onSuperseded` when another worker has
   * claimed it; each at most once. Returns what stops watching it.
   */
  watch(jobId: string, handlers: { onCancel: () => void; onSuperseded: () => void }): () => void {
    const once = (fn: () => void) => {
      let called = false;
      return () => {
        if (called) return;
        called = true;
        fn();
      };
    };
    this.watched.set(jobId, { onCancel: once(handlers.onCancel), onSuperseded: once(handlers.onSuperseded) });
    return () => this.watched.delete(jobId);
  }

  private schedulePoll(): void {
    if (this.stopped) return;
    this.pollTimer = setTimeout(() => void this.poll().finally(() => this.schedulePoll()), this.opts.pollMs);
  }

  private scheduleBeat(): void {
    if (this.stopped) return;
    this.beatTimer = setTimeout(() => void this.beat().finally(() => this.scheduleBeat()), this.opts.heartbeatMs);
  }

  private async poll(): Promise<void> {
    if (this.watched.size === 0) return;
    try {
      for (const row of await jobs.watchState(this.db, [...this.watched.keys()])) {
        const handlers = this.watched.get(row.id);
        if (row.cancelRequested) handlers?.onCancel();
        else if (row.workerId !== null && row.workerId !== this.workerId) handlers?.onSuperseded();
      }
      if (this.failing) this.log.info("cancel polling works again");
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.log.warn("cannot poll for cancel requests (database unavailable?)", { error: errorText(err) });
      this.failing = true;
    }
  }

  private async beat(): Promise<void> {
    if (this.watched.size === 0) return;
    await jobs.heartbeat(this.db, [...this.watched.keys()], this.workerId).catch(() => undefined);
  }
}
