// The training queue: its name comes from Config, its payload is only the job id (Postgres holds
// everything else, so Redis can be emptied without losing a job's config or results).
import { Queue, type ConnectionOptions } from "bullmq";

export interface TrainingPayload {
  jobId: string;
}

export const TRAIN_JOB_NAME = "train";

export function redisConnection(redisUrl: string): ConnectionOptions {
  // maxRetriesPerRequest null: BullMQ's blocking commands must wait out a Redis restart rather
  // than fail after a few retries.
  return { url: redisUrl, maxRetriesPerRequest: null };
}

export type TrainingQueue = Queue<TrainingPayload>;

export function createTrainingQueue(redisUrl: string, queueName: string): TrainingQueue {
  return new Queue<TrainingPayload>(queueName, { connection: redisConnection(redisUrl) });
}

/**
 * Enqueue a stored job. The BullMQ job id is the database id, so enqueueing the same job twice
 * (a retried request, a reconciliation sweep) adds it once.
 */
export async function enqueueTraining(queue: TrainingQueue, jobId: string): Promise<void> {
  await queue.add(
    TRAIN_JOB_NAME,
    { jobId },
    {
      jobId,
      // Transient failures (database or Redis blinking) are retried; failures that cannot
      // succeed on retry are thrown as UnrecoverableError by the worker.
      attempts: 3,
      backoff: { type: "exponential", delay: 2000 },
      removeOnComplete: true,
      removeOnFail: 1000,
    },
  );
}
