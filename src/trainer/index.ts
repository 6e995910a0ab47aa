// The trainer's public API. Pure: no I/O and no Node-only imports (only zod), so it runs in a
// worker thread, a test, or anywhere else.
export {
  activationSchema,
  checkFit,
  denseLayerSchema,
  jobConfigSchema,
  layerSchema,
  lossSchema,
  modelSchema,
  optimizerSchema,
  sgdSchema,
  validationSchema,
  zodIssueParam,
} from "./config.js";
export type {
  Activation,
  DatasetMeta,
  DenseLayerSpec,
  FitProblem,
  JobConfig,
  JobConfigInput,
  LayerSpec,
  LossName,
  ModelSpec,
  OptimizerSpec,
  ValidationSpec,
} from "./config.js";
export { TrainerError, type TrainerErrorCode } from "./errors.js";
export { Rng, RngStream, permutation, shuffleInPlace, type RngState } from "./rng.js";
export { splitValidation, type TrainSet } from "./data.js";
export { jsKernels, kernels, type Floats, type Kernels } from "./kernels.js";
export { losses, type Loss } from "./losses.js";
export { buildModel, Model, type BuildOptions, type Dtype } from "./model.js";
export type { Layer, NamedTensor } from "./layers/layer.js";
export { createOptimizer, type Optimizer, type OptimizerState, type ParamBuffers } from "./optimizers/optimizer.js";
export type { SgdState } from "./optimizers/sgd.js";
export { evaluate, type Evaluation, type Task } from "./evaluate.js";
export { train, type EpochReport, type TrainData, type TrainHooks, type TrainResult } from "./train.js";
export {
  decodeSafetensors,
  encodeSafetensors,
  modelMetadata,
  type DecodedSafetensors,
  type SafetensorsTensor,
} from "./safetensors.js";
