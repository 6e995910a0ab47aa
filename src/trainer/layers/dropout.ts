// Inverted dropout: in training each value is zeroed with probability `rate` and the others are
// scaled by 1/(1 - rate), so that inference (which passes values through unchanged) sees the same
// expected values. The mask comes from the model's dropout stream, so the same seed (or a restored
// RNG state) gives the same masks.
import type { Floats } from "../kernels.js";
import type { Rng } from "../rng.js";
import { NONE, ParameterFreeLayer, type LayerContext } from "./layer.js";

export class DropoutLayer extends ParameterFreeLayer {
  readonly rate: number;
  private readonly scale: number;
  private readonly rng: Rng;
  private output: Floats = NONE;
  /** 1 where the last training forward kept the value. */
  private mask = new Uint8Array(0);
  /** Whether the last forward passed its input through (inference, or rate 0). */
  private passedThrough = true;

  constructor(spec: { rate: number }, context: LayerContext) {
    super(context);
    this.rate = spec.rate;
    this.scale = 1 / (1 - spec.rate);
    this.rng = context.rng;
  }

  allocate(capacity: number, newArray: (length: number) => Floats): void {
    if (this.rate === 0) return;
    this.output = newArray(capacity * this.outWidth);
    this.mask = new Uint8Array(capacity * this.outWidth);
  }

  forward(input: Floats, rows: number, training: boolean): Floats {
    this.passedThrough = !training || this.rate === 0;
    if (this.passedThrough) return input;
    const count = rows * this.outWidth;
    for (let i = 0; i < count; i++) {
      const keep = this.rng.next() >= this.rate;
      this.mask[i] = keep ? 1 : 0;
      this.output[i] = keep ? input[i] * this.scale : 0;
    }
    return this.output;
  }

  backward(gradOutput: Floats, rows: number): Floats | null {
    if (!this.needsInputGrad) return null;
    if (this.passedThrough) return gradOutput;
    const count = rows * this.outWidth;
    for (let i = 0; i < count; i++) gradOutput[i] = this.mask[i] ? gradOutput[i] * this.scale : 0;
    return gradOutput;
  }
}
