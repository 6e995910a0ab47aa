// The training queue: its name comes from Config, its payload is only the job id (Postgres holds
// everything else, so Redis can be emptied without losing a job's config or results: workers
// re-enqueue from Postgres what Redis lost, see workers/reconcile.ts).
import { Queue, type ConnectionOptions } from "bullmq";

export interface TrainingPayload {
  jobId: string;
}

export const TRAIN_JOB_NAME = "train";

/** Our job priorities: higher runs first. */
export const MIN_PRIORITY = -1000;
export const MAX_PRIORITY = 1000;

/**
 * BullMQ's priority for ours. BullMQ runs 1 first, larger numbers later, and jobs with no priority
 * (0) before every prioritised one; so every job gets a BullMQ priority in 1..2001, ours 1000
 * mapping to 1 and -1000 to 2001. Jobs of equal priority run in the order they were added.
 */
export function bullPriority(priority: number): number {
  if (!Number.isInteger(priority) || priority < MIN_PRIORITY || priority > MAX_PRIORITY) {
    throw new RangeError(`priority must be an integer from ${MIN_PRIORITY} to ${MAX_PRIORITY}, got ${priority}`);
  }
  return MAX_PRIORITY + 1 - priority;
}

export function redisConnection(redisUrl: string): ConnectionOptions {
  // maxRetriesPerRequest null: BullMQ's blocking commands must wait out a Redis restart rather
  // than fail after a few retries. Callers that must not wait (the API) bound each call with
  // withTimeout instead.
  return { url: redisUrl, maxRetriesPerRequest: null };
}

export type TrainingQueue = Queue<TrainingPayload>;

export function createTrainingQueue(redisUrl: string, queueName: string, onError: (err: Error) => void = () => undefined): TrainingQueue {
  const queue = new Queue<TrainingPayload>(queueName, { connection: redisConnection(redisUrl) });
  // Without a listener an 'error' event (Redis restarting) would crash the process.
  queue.on("error", onError);
  return queue;
}

export interface RetryPolicy {
  /** Deliveries before a transiently failing job fails for good. */
  attempts: number;
  /** First retry delay in ms; each later one doubles. */
  backoffMs: number;
}

/**
 * Enqueue a stored job. The BullMQ job id is the database id, so enqueueing the same job twice
 * (a retried request, a reconciliation sweep) adds it once.
 */
export async function enqueueTraining(queue: TrainingQueue, job: { id: string; priority: number }, policy: RetryPolicy): Promise<void> {
  await queue.add(
    TRAIN_JOB_NAME,
    { jobId: job.id },
    {
      jobId: job.id,
      priority: bullPriority(job.priority),
      // Transient failures (database or Redis unavailable) are retried with backoff, resuming from
      // the last checkpoint; failures that cannot succeed on retry are thrown by the worker as
      // UnrecoverableError and fail at once.
      attempts: policy.attempts,
      backoff: { type: "exponential", delay: policy.backoffMs },
      removeOnComplete: true,
      // Failed jobs stay a while for inspection (their failedReason); Postgres has the outcome.
      removeOnFail: { count: 1000 },
    },
  );
}

export class QueueTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: Redis did not answer within ${ms} ms`);
    this.name = "QueueTimeoutError";
  }
}

/**
 * Bounds a Redis call. The queue's connection waits for Redis indefinitely (see redisConnection);
 * an HTTP request must not. The command itself may still run once Redis is back: every call made
 * this way is idempotent.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  // If the timeout wins, a later rejection of the call must not be an unhandled one.
  promise.catch(() => undefined);
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new QueueTimeoutError(what, ms)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
