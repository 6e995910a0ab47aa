// A standalone activation layer (e.g. after batchnorm): y = f(x) value by value, or softmax over
// each sample's values.
import { ActivationStage } from "../activations.js";
import type { Floats } from "../kernels.js";
import type { Activation } from "../schema/layers.js";
import { NONE, ParameterFreeLayer, type LayerContext } from "./layer.js";

export class ActivationLayer extends ParameterFreeLayer {
  private readonly activation: ActivationStage;
  private output: Floats = NONE;

  constructor(spec: { activation: Activation }, context: LayerContext) {
    super(context);
    this.activation = new ActivationStage(spec.activation);
  }

  allocate(capacity: number, newArray: (length: number) => Floats): void {
    this.output = newArray(capacity * this.outWidth);
    this.activation.allocate(capacity * this.outWidth, newArray);
  }

  forward(input: Floats, rows: number, training: boolean): Floats {
    // A copy: the input is the layer below's, which it may still need for its own backward.
    const count = rows * this.outWidth;
    for (let i = 0; i < count; i++) this.output[i] = input[i];
    this.activation.forward(this.output, rows, this.outWidth, training);
    return this.output;
  }

  backward(gradOutput: Floats, rows: number): Floats | null {
    if (!this.needsInputGrad) return null;
    this.activation.backward(this.output, gradOutput, rows, this.outWidth);
    return gradOutput;
  }
}
