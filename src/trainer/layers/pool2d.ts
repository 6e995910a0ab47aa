// Max and average pooling over each channel of a [C, H, W] input. "same" padding never takes part:
// max pooling ignores it (as padding with -Infinity would) and average pooling divides by the number
// of real input positions in the window (TensorFlow's behaviour; PyTorch's count_include_pad=False).
import { kernels, type Floats, type WindowGeometry } from "../kernels.js";
import type { Pool2dLayerSpec } from "../schema/layers.js";
import { asImage, windowGeometry } from "../shapes.js";
import { allocInt32 } from "../wasm/arena.js";
import { NONE, ParameterFreeLayer, type LayerContext } from "./layer.js";

export class Pool2dLayer extends ParameterFreeLayer {
  readonly kind: "max" | "avg";
  readonly geometry: WindowGeometry;

  private output: Floats = NONE;
  private inputGrad: Floats = NONE;
  /** Max pooling: where in the batch's input each output came from, for backward. */
  private argmax: Int32Array = new Int32Array(0);

  constructor(spec: Pool2dLayerSpec, context: LayerContext) {
    super(context);
    const image = asImage(context.inShape);
    if (!image) throw new Error(`${spec.type} layer ${context.index}: expected a [C, H, W] input, got [${context.inShape.join(", ")}]`);
    this.kind = spec.type === "maxpool2d" ? "max" : "avg";
    this.geometry = windowGeometry(image, spec.pool_size, spec.stride ?? spec.pool_size, spec.padding);
  }

  allocate(capacity: number, newArray: (length: number) => Floats): void {
    this.output = newArray(capacity * this.outWidth);
    // In the kernels' arena with the other buffers, so that the WebAssembly kernels can write it.
    if (this.kind === "max") this.argmax = allocInt32(capacity * this.outWidth);
    if (this.needsInputGrad) this.inputGrad = newArray(capacity * this.inWidth);
  }

  forward(input: Floats, rows: number): Floats {
    if (this.kind === "max") kernels.maxPool2d(input, this.output, this.argmax, rows, this.geometry);
    else kernels.avgPool2d(input, this.output, rows, this.geometry);
    return this.output;
  }

  backward(gradOutput: Floats, rows: number): Floats | null {
    if (!this.needsInputGrad) return null;
    if (this.kind === "max") kernels.maxPool2dBackward(gradOutput, this.argmax, this.inputGrad, rows, this.geometry);
    else kernels.avgPool2dBackward(gradOutput, this.inputGrad, rows, this.geometry);
    return this.inputGrad;
  }
}
