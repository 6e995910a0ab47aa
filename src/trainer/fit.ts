// Does a config fit its dataset? Checked by the API at submission, so that a config that cannot
// work is a 422 naming the field rather than a job that fails later in a worker.
import type { JobConfig } from "./config.js";
import { createLoss, lossFits } from "./losses.js";
import { inferShapes } from "./shapes.js";
import type { Monitor } from "./schema/schedule.js";

/** What the trainer needs to know about a dataset to tell whether a config can work on it. */
export interface DatasetMeta {
  task: "regression" | "classification";
  /** Values per input row (the product of inputShape). */
  inputWidth: number;
  inputShape: number[];
  /** Values per target row (1 for classification: the class index). */
  targetWidth: number;
  /** Number of classes (classification); ignored for regression. */
  classes: number;
}

export interface FitProblem {
  param: string;
  message: string;
}

const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const show = (shape: readonly number[]) => `[${shape.join(", ")}]`;

/** Returns the first problem found, or null when the config can train on the dataset. */
export function checkFit(config: JobConfig, meta: DatasetMeta): FitProblem | null {
  const declared = config.model.input_shape;
  if (declared !== undefined) {
    // A flat dataset may be given any shape of the same size (a CSV of 784 pixels read as
    // [1, 28, 28]); a dataset that declares its own shape must be given exactly that one.
    const sizeDiffers = product(declared) !== meta.inputWidth;
    const shapeDiffers = meta.inputShape.length > 1 && show(declared) !== show(meta.inputShape);
    if (sizeDiffers || shapeDiffers) {
      return {
        param: "model.input_shape",
        message:
          `model.input_shape ${show(declared)} (${product(declared)} values) does not agree with the dataset's ` +
          `input shape ${show(meta.inputShape)} (${meta.inputWidth} values).`,
      };
    }
  }
  const inputShape = declared ?? meta.inputShape;

  const inferred = inferShapes(config.model, inputShape);
  if ("param" in inferred) return inferred;
  const layers = config.model.layers;
  const outputUnits = product(inferred.shapes[inferred.shapes.length - 1]);

  const lossProblem = lossFits(config.loss, meta, outputUnits);
  if (lossProblem) {
    if (lossProblem.param !== "units") return lossProblem;
    // The output width is set by the last layer that has units or filters.
    let i = layers.length - 1;
    while (i > 0 && !("units" in layers[i]) && !("filters" in layers[i])) i--;
    const field = "units" in layers[i] ? "units" : "filters" in layers[i] ? "filters" : "";
    return { param: `model.layers.${i}${field ? `.${field}` : ""}`, message: lossProblem.message };
  }

  // A loss that applies softmax or sigmoid itself needs logits (or that very function, which it
  // then folds in) from the last activation.
  const folds = createLoss(config.loss).foldsOutput;
  if (folds) {
    for (let i = layers.length - 1; i >= 0; i--) {
      const layer = layers[i];
      if (!("activation" in layer)) continue;
      if (layer.activation !== "linear" && layer.activation !== folds) {
        return {
          param: `model.layers.${i}.activation`,
          message:
            `The loss applies ${folds} to the model's outputs, so the last activation must be "linear" or "${folds}", ` +
            `not "${layer.activation}".`,
        };
      }
      break;
    }
  }

  const monitors: [string, Monitor | undefined][] = [
    ["early_stopping.monitor", config.early_stopping?.monitor],
    ["lr_schedule.monitor", config.lr_schedule.type === "reduce_on_plateau" ? config.lr_schedule.monitor : undefined],
  ];
  for (const [param, monitor] of monitors) {
    const problem = monitor && monitorProblem(monitor, meta, createLoss(config.loss).name === "binary_cross_entropy");
    if (problem) return { param, message: problem };
  }

  const aug = config.augmentation;
  const augmenting = aug.horizontal_flip > 0 || aug.brightness > 0 || aug.noise_std > 0 || aug.translate > 0;
  if (augmenting && (inputShape.length < 2 || inputShape.length > 3)) {
    return {
      param: "augmentation",
      message: `Augmentation needs image inputs ([C, H, W]); the input shape is ${show(inputShape)}. Declare input_shape on the dataset or the model.`,
    };
  }

  if (config.lr_schedule.warmup_epochs >= config.epochs) {
    return {
      param: "lr_schedule.warmup_epochs",
      message: `warmup_epochs (${config.lr_schedule.warmup_epochs}) must be less than epochs (${config.epochs}).`,
    };
  }
  return null;
}

function monitorProblem(monitor: Monitor, meta: DatasetMeta, binary: boolean): string | null {
  if (binary) {
    return monitor === "val_loss" || monitor === "train_loss" || monitor === "val_accuracy"
      ? null
      : `binary_cross_entropy jobs measure val_loss and val_accuracy (per label), not ${monitor}.`;
  }
  const classification = meta.task === "classification";
  if ((monitor === "val_accuracy" || monitor === "val_top5_accuracy") && !classification) {
    return `${monitor} is only measured on classification datasets; use val_loss, val_mae or val_rmse.`;
  }
  if (monitor === "val_top5_accuracy" && meta.classes <= 5) {
    return `val_top5_accuracy is measured only with more than 5 classes; this dataset has ${meta.classes}.`;
  }
  if ((monitor === "val_mae" || monitor === "val_rmse") && classification) {
    return `${monitor} is only measured on regression datasets; use val_loss or val_accuracy.`;
  }
  return null;
}
