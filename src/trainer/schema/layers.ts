// The layer specs of `model.layers`: a discriminated union on `type`, so an unknown type reports
// the path `model.layers.<i>.type`. Shapes are channels first ([C, H, W]), as in PyTorch. The
// descriptions below are the reference: they appear in the OpenAPI document as written.
import { z } from "zod";

export const activationSchema = z
  .enum(["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "softmax", "linear"])
  .describe(
    "Applied to the layer's output. leaky_relu has slope 0.01 below 0 and elu alpha 1 (PyTorch's defaults); gelu is the tanh " +
      "approximation. softmax only on the last layer: with cross_entropy it is folded into the loss (which takes logits), " +
      "otherwise applied. sigmoid on the last layer is folded into binary_cross_entropy likewise.",
  );
export type Activation = z.infer<typeof activationSchema>;

const side = z.number().int().min(1).max(1024);
/** An integer, or an [height, width] pair. */
const size2 = z.union([side, z.tuple([side, side])]);
export type Size2 = z.infer<typeof size2>;

export const denseLayerSchema = z
  .strictObject({
    type: z.literal("dense"),
    units: z.number().int().min(1).max(65536).describe("Number of outputs."),
    activation: activationSchema.default("linear"),
  })
  .describe("Fully connected: each output is a weighted sum of every input plus a bias. A [C, H, W] input is read flattened.");
export type DenseLayerSpec = z.infer<typeof denseLayerSchema>;

export const conv2dLayerSchema = z
  .strictObject({
    type: z.literal("conv2d"),
    filters: z.number().int().min(1).max(4096).describe("Output channels."),
    kernel_size: size2.describe("Kernel height and width: one integer, or [h, w]."),
    stride: size2.default(1).describe("One integer, or [h, w]."),
    padding: z
      .enum(["valid", "same"])
      .default("valid")
      .describe(
        "valid: no padding. same: zero padding so that the output is ceil(input / stride) high and wide " +
          "(Keras/TensorFlow's rule; odd totals put the extra row/column at the bottom/right).",
      ),
    activation: activationSchema.default("linear"),
  })
  .describe("2-D convolution over a [C, H, W] input.");
export type Conv2dLayerSpec = z.infer<typeof conv2dLayerSchema>;

const poolFields = {
  pool_size: size2.default(2).describe("Window height and width: one integer, or [h, w]."),
  stride: size2.optional().describe("Default: the pool size (non-overlapping windows)."),
  padding: z
    .enum(["valid", "same"])
    .default("valid")
    .describe("valid: windows that do not fit are dropped. same: as conv2d's; padding never wins a max or counts in an average."),
};
export const maxPool2dLayerSchema = z.strictObject({ type: z.literal("maxpool2d"), ...poolFields }).describe("Max over each window, per channel.");
export const avgPool2dLayerSchema = z.strictObject({ type: z.literal("avgpool2d"), ...poolFields }).describe("Mean over each window, per channel.");
export type Pool2dLayerSpec = z.infer<typeof maxPool2dLayerSchema> | z.infer<typeof avgPool2dLayerSchema>;

export const flattenLayerSchema = z.strictObject({ type: z.literal("flatten") }).describe("Reshapes [C, H, W] to [C*H*W], row-major as torch.flatten.");

export const dropoutLayerSchema = z
  .strictObject({
    type: z.literal("dropout"),
    rate: z.number().min(0).lt(1).describe("Probability of zeroing each value in training."),
  })
  .describe("Inverted dropout: in training, values are zeroed with probability rate and the rest scaled by 1/(1-rate); off at validation and prediction.");

export const batchNormLayerSchema = z
  .strictObject({
    type: z.literal("batchnorm"),
    momentum: z.number().gt(0).lt(1).default(0.1).describe("running = (1 - momentum) * running + momentum * batch statistic."),
    epsilon: z.number().positive().default(1e-5).describe("Added to the variance."),
  })
  .describe(
    "Batch normalisation per feature (flat input) or per channel ([C, H, W] input). Training normalises with the batch's " +
      "statistics and updates running ones (variance unbiased); validation and prediction use the running statistics. PyTorch's conventions.",
  );

export const activationLayerSchema = z
  .strictObject({ type: z.literal("activation"), activation: activationSchema })
  .describe("An activation on its own, e.g. after batchnorm.");

/** One entry of `model.layers`; new layer kinds are added to this list. */
export const layerSchema = z.discriminatedUnion("type", [
  denseLayerSchema,
  conv2dLayerSchema,
  maxPool2dLayerSchema,
  avgPool2dLayerSchema,
  flattenLayerSchema,
  dropoutLayerSchema,
  batchNormLayerSchema,
  activationLayerSchema,
]);
export type LayerSpec = z.infer<typeof layerSchema>;
