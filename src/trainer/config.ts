// The job config: one zod schema shared by the API (validation, OpenAPI, 422 errors) and the worker
// (the trainer reads the parsed object). Field names follow DESIGN.md ("A job config").
//
// Every object is strict so a misspelt key is an error rather than a silently ignored option.
// Layers and optimizers are discriminated unions on `type`: adding conv2d, dropout, adam... means
// adding one schema to the list, and an unknown `type` reports the path `...layers.<i>.type`.
import { z } from "zod";

/** Activations a layer can fuse into its output. */
export const activationSchema = z.enum(["relu", "tanh", "sigmoid", "linear"]);
export type Activation = z.infer<typeof activationSchema>;

/** A fully connected layer: `units` outputs, each a weighted sum of every input plus a bias. */
export const denseLayerSchema = z.strictObject({
  type: z.literal("dense"),
  units: z.number().int().min(1).max(65536),
  /** Default "linear" (no activation), as in Keras. */
  activation: activationSchema.default("linear"),
});
export type DenseLayerSpec = z.infer<typeof denseLayerSchema>;

/** One entry of `model.layers`; new layer kinds are added to this list. */
export const layerSchema = z.discriminatedUnion("type", [denseLayerSchema]);
export type LayerSpec = z.infer<typeof layerSchema>;

export const modelSchema = z.strictObject({
  /** Shape of one input sample, e.g. [1, 28, 28]; optional for flat inputs. Its product must equal
   *  the dataset's input width (checked against the dataset by `checkFit`). */
  input_shape: z.array(z.number().int().positive()).min(1).max(4).optional(),
  layers: z.array(layerSchema).min(1).max(64),
});
export type ModelSpec = z.infer<typeof modelSchema>;

/** mse/mae for regression, cross_entropy (softmax + NLL over integer labels) for classification. */
export const lossSchema = z.enum(["mse", "mae", "cross_entropy"]);
export type LossName = z.infer<typeof lossSchema>;

/** Stochastic gradient descent with PyTorch's momentum convention (see optimizers/sgd.ts). */
export const sgdSchema = z.strictObject({
  type: z.literal("sgd"),
  /** Learning rate, default 0.01. */
  lr: z.number().positive().default(0.01),
  /** Momentum in [0, 1), default 0.9. */
  momentum: z.number().min(0).lt(1).default(0.9),
  /** Nesterov momentum, default false. */
  nesterov: z.boolean().default(false),
  /** L2 penalty added to the gradient (PyTorch's weight_decay), default 0. */
  weight_decay: z.number().min(0).default(0),
});

/** New optimizers (adam, adamw, rmsprop) are added to this list. Default: sgd with its defaults. */
export const optimizerSchema = z.discriminatedUnion("type", [sgdSchema]).prefault({ type: "sgd" });
export type OptimizerSpec = z.infer<typeof optimizerSchema>;

/** Either hold out a fraction of the training rows, or validate on another dataset. */
export const validationSchema = z
  .union([
    z.strictObject({ split: z.number().gt(0).lt(1) }),
    z.strictObject({ dataset_id: z.uuid() }),
  ])
  .default(() => ({ split: 0.2 }));
export type ValidationSpec = z.infer<typeof validationSchema>;

export const jobConfigSchema = z.strictObject({
  dataset_id: z.uuid(),
  /** Default { split: 0.2 }. */
  validation: validationSchema,
  model: modelSchema,
  loss: lossSchema,
  optimizer: optimizerSchema,
  /** Full passes over the training set, default 10. */
  epochs: z.number().int().min(1).max(100000).default(10),
  /** Rows per mini-batch (the last batch of an epoch may be smaller), default 32. */
  batch_size: z.number().int().min(1).max(65536).default(32),
  /** Reshuffle the training rows every epoch, default true. */
  shuffle: z.boolean().default(true),
  /** Seeds initialisation, shuffling and the validation split. The API fills in a random one at
   *  submission so every job is reproducible; the trainer uses 0 if it is still absent. */
  seed: z.number().int().min(0).max(4294967295).optional(),
});
/** A parsed config, defaults filled in. */
export type JobConfig = z.infer<typeof jobConfigSchema>;
/** What a client may send (defaults optional). */
export type JobConfigInput = z.input<typeof jobConfigSchema>;

/**
 * The dotted path of the first issue, as the API's error `param` (e.g. "model.layers.2.units").
 * A union that failed in every branch reports only its own path, so we dig into the branch with the
 * fewest issues (the one the client most likely meant) to name the real field. An unknown key is
 * named by appending the key to the object's path.
 */
export function zodIssueParam(error: z.ZodError): string {
  const first = error.issues[0];
  return first ? issuePath(first, []).map(String).join(".") : "";
}

function issuePath(issue: z.core.$ZodIssue, prefix: PropertyKey[]): PropertyKey[] {
  const path = [...prefix, ...issue.path];
  if (issue.code === "invalid_union" && issue.errors.length > 0) {
    let best = issue.errors[0];
    for (const branch of issue.errors) if (branch.length < best.length) best = branch;
    if (best.length > 0) return issuePath(best[0], path);
  }
  if (issue.code === "unrecognized_keys" && issue.keys.length > 0) path.push(issue.keys[0]);
  return path;
}

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

/**
 * Checks at submission that a config fits its dataset, so the client gets a 422 naming the field
 * instead of a failed job later. Returns the first problem found, or null.
 */
export function checkFit(config: JobConfig, meta: DatasetMeta): FitProblem | null {
  const inputShape = config.model.input_shape;
  if (inputShape !== undefined) {
    const size = inputShape.reduce((a, b) => a * b, 1);
    if (size !== meta.inputWidth) {
      return {
        param: "model.input_shape",
        message:
          `model.input_shape [${inputShape.join(", ")}] holds ${size} values but the dataset's ` +
          `input shape [${meta.inputShape.join(", ")}] holds ${meta.inputWidth}.`,
      };
    }
  }

  const classification = meta.task === "classification";
  if (config.loss === "cross_entropy" && (!classification || meta.classes < 2)) {
    return {
      param: "loss",
      message: classification
        ? `cross_entropy needs at least 2 classes; the dataset has ${meta.classes}.`
        : "cross_entropy needs a classification dataset; this dataset is a regression one (use mse or mae).",
    };
  }
  if (config.loss !== "cross_entropy" && classification) {
    return {
      param: "loss",
      message: `${config.loss} needs a regression dataset; this dataset is a classification one (use cross_entropy).`,
    };
  }

  // Today every layer is dense, so the last one sets the output width. When width-preserving layers
  // (dropout) arrive this must look for the last layer with units; `.units` will stop type-checking
  // here and point the way.
  const layers = config.model.layers;
  const last = layers.length - 1;
  const units = layers[last].units;
  const wanted = config.loss === "cross_entropy" ? meta.classes : meta.targetWidth;
  if (units !== wanted) {
    const why =
      config.loss === "cross_entropy"
        ? `cross_entropy over this dataset needs ${wanted} (one per class)`
        : `${config.loss} needs ${wanted} (the dataset's target width)`;
    return {
      param: `model.layers.${last}.units`,
      message: `The last layer has ${units} units but ${why}.`,
    };
  }
  return null;
}
