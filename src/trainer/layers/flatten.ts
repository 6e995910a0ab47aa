// Flatten: [C, H, W] to [C·H·W]. Batches are stored row-major already, so the values do not move
// (the order is torch.flatten's) and both passes hand their buffer straight through.
import type { Floats } from "../kernels.js";
import { ParameterFreeLayer } from "./layer.js";

export class FlattenLayer extends ParameterFreeLayer {
  allocate(): void {}

  forward(input: Floats): Floats {
    return input;
  }

  backward(gradOutput: Floats): Floats | null {
    return this.needsInputGrad ? gradOutput : null;
  }
}
