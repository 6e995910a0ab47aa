// The trainer's public API. Pure: no I/O and no Node-only imports (only zod), so it runs in a
// worker thread, a test, or anywhere else.
export * from "./config.js";
export { checkFit, type DatasetMeta, type FitProblem } from "./fit.js";
export { inferShapes } from "./shapes.js";
export { TrainerError, type TrainerErrorCode } from "./errors.js";
export { Rng, RngStream, permutation, shuffleInPlace, type RngState } from "./rng.js";
export { splitValidation, type TrainSet } from "./data.js";
export { jsKernels, kernels, kernelsChoice, setKernels, wasmKernels, type Floats, type Kernels } from "./kernels.js";
export { createLoss, lossFits, type Loss } from "./losses.js";
export { buildModel, Model, type BuildOptions, type Dtype } from "./model.js";
export type { Layer, NamedTensor } from "./layers/layer.js";
export { createOptimizer, type Optimizer, type OptimizerState, type ParamBuffers } from "./optimizers/optimizer.js";
export { createSchedule, resolveMode, type LrSchedule, type ScheduleState } from "./schedules.js";
export { createAugmenter, type Augmenter } from "./augment.js";
export { evaluate, type Evaluation, type Task } from "./evaluate.js";
export { train, OVERFIT_WINDOW, type EpochReport, type TrainData, type TrainHooks, type TrainResult, type TrainerSnapshot } from "./train.js";
export {
  decodeSafetensors,
  encodeSafetensors,
  modelMetadata,
  type DecodedSafetensors,
  type SafetensorsTensor,
} from "./safetensors.js";
