// Use cases for jobs: submit (check the config against the data before anything is queued), read.
import { randomInt } from "node:crypto";
import { AppError } from "../errors.js";
import { checkFit, type JobConfig } from "../trainer/index.js";
import type { Db } from "../db/client.js";
import * as datasets from "../db/datasets.js";
import * as jobs from "../db/jobs.js";
import { enqueueTraining, type TrainingQueue } from "../queue/index.js";

export async function submitJob(db: Db, queue: TrainingQueue, parsed: JobConfig): Promise<jobs.JobRow> {
  const dataset = await readyDataset(db, parsed.dataset_id, "dataset_id");
  let validationDatasetId: string | null = null;
  if ("dataset_id" in parsed.validation) {
    const val = await readyDataset(db, parsed.validation.dataset_id, "validation.dataset_id");
    const same =
      val.task === dataset.task &&
      val.inputWidth === dataset.inputWidth &&
      val.targetWidth === dataset.targetWidth &&
      val.classes.join("\u0000") === dataset.classes.join("\u0000");
    if (!same) {
      throw new AppError(
        "dataset_mismatch",
        `The validation dataset (${describe(val)}) does not match the training dataset (${describe(dataset)}).`,
        "validation.dataset_id",
      );
    }
    validationDatasetId = val.id;
  }
  const misfit = checkFit(parsed, {
    task: dataset.task as "regression" | "classification",
    inputWidth: dataset.inputWidth,
    inputShape: dataset.inputShape,
    targetWidth: dataset.targetWidth,
    classes: dataset.classes.length,
  });
  if (misfit) throw new AppError("dataset_mismatch", misfit.message, misfit.param);

  // A job without a seed gets one now, stored with its config, so every run of it is reproducible.
  // The input shape defaults to the dataset's, so the stored config (and the weights' metadata)
  // describes the whole model.
  const config: JobConfig = {
    ...parsed,
    model: { ...parsed.model, input_shape: parsed.model.input_shape ?? dataset.inputShape },
    seed: parsed.seed ?? randomInt(0, 2 ** 31),
  };
  const job = await jobs.createJob(db, { config, datasetId: dataset.id, validationDatasetId, priority: 0 });
  try {
    await enqueueTraining(queue, job.id);
  } catch (err) {
    await jobs.deleteJob(db, job.id).catch(() => undefined);
    throw new AppError("unavailable", "The job queue is unavailable; the job was not accepted. Try again.", null);
  }
  return job;
}

export async function getJob(db: Db, id: string): Promise<jobs.JobRow> {
  const job = await jobs.findJob(db, id);
  if (!job) throw new AppError("job_not_found", `No job has id ${id}.`, "id");
  return job;
}

async function readyDataset(db: Db, id: string, param: string): Promise<datasets.DatasetRow> {
  const row = await datasets.findDataset(db, id);
  if (!row || row.status === "failed") throw new AppError("dataset_not_found", `No dataset has id ${id}.`, param);
  if (row.status !== "ready") throw new AppError("dataset_not_ready", `Dataset ${id} is still ${row.status}.`, param);
  return row;
}

function describe(d: datasets.DatasetRow): string {
  return d.task === "classification"
    ? `classification, ${d.inputWidth} inputs, classes [${d.classes.join(", ")}]`
    : `regression, ${d.inputWidth} inputs, ${d.targetWidth} targets`;
}
