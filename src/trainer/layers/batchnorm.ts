// Batch normalisation, PyTorch's BatchNorm1d/2d: per feature of a flat input, per channel of an
// image ([C, H, W]; a 2-D [H, W] input is one channel). With m values of a channel in the batch:
//
//   training:   x̂ = (x - mean) / sqrt(var + eps), var the biased batch variance (divided by m);
//               running_mean = (1 - momentum)·running_mean + momentum·mean
//               running_var  = (1 - momentum)·running_var  + momentum·var·m/(m - 1)  (unbiased)
//   inference:  x̂ = (x - running_mean) / sqrt(running_var + eps)
//   both:       y = gamma·x̂ + beta
//
// gamma and beta are trained (params); the running statistics are buffers, saved with the weights
// but never touched by an optimizer.
import type { Floats } from "../kernels.js";
import { NONE, type Layer, type LayerContext, type ModelStorage, type NamedTensor, type TensorLookup } from "./layer.js";

export class BatchNormLayer implements Layer {
  readonly index: number;
  readonly inShape: readonly number[];
  readonly outShape: readonly number[];
  readonly inWidth: number;
  readonly outWidth: number;
  readonly paramCount: number;
  readonly bufferCount: number;
  /** Features or channels, and the values per channel in one sample (H·W; 1 for a flat input). */
  readonly channels: number;
  readonly spatial: number;
  readonly momentum: number;
  readonly epsilon: number;
  private readonly needsInputGrad: boolean;

  private gamma: Floats = NONE;
  private beta: Floats = NONE;
  private gammaGrad: Floats = NONE;
  private betaGrad: Floats = NONE;
  private runningMean: Floats = NONE;
  private runningVar: Floats = NONE;

  private output: Floats = NONE;
  /** x̂ of the last training forward, and 1/sqrt(var + eps) per channel, for backward. */
  private normalised: Floats = NONE;
  private invStd: Floats = NONE;

  constructor(spec: { momentum: number; epsilon: number }, context: LayerContext) {
    const shape = context.inShape;
    this.index = context.index;
    this.inShape = shape;
    this.outShape = shape;
    this.inWidth = shape.reduce((a, b) => a * b, 1);
    this.outWidth = this.inWidth;
    this.channels = shape.length === 2 ? 1 : shape[0];
    this.spatial = this.inWidth / this.channels;
    this.paramCount = 2 * this.channels;
    this.bufferCount = 2 * this.channels;
    this.momentum = spec.momentum;
    this.epsilon = spec.epsilon;
    this.needsInputGrad = context.needsInputGrad;
  }

  bind(storage: ModelStorage, paramOffset: number, bufferOffset: number): void {
    const c = this.channels;
    this.gamma = storage.params.subarray(paramOffset, paramOffset + c);
    this.beta = storage.params.subarray(paramOffset + c, paramOffset + 2 * c);
    this.gammaGrad = storage.grads.subarray(paramOffset, paramOffset + c);
    this.betaGrad = storage.grads.subarray(paramOffset + c, paramOffset + 2 * c);
    this.runningMean = storage.buffers.subarray(bufferOffset, bufferOffset + c);
    this.runningVar = storage.buffers.subarray(bufferOffset + c, bufferOffset + 2 * c);
  }

  /** gamma 1, beta 0, running mean 0, running variance 1, as PyTorch; nothing is drawn. */
  init(): void {
    this.gamma.fill(1);
    this.beta.fill(0);
    this.runningMean.fill(0);
    this.runningVar.fill(1);
  }

  allocate(capacity: number, newArray: (length: number) => Floats): void {
    this.output = newArray(capacity * this.outWidth);
    this.normalised = newArray(capacity * this.outWidth);
    if (this.invStd.length === 0) this.invStd = newArray(this.channels);
  }

  forward(input: Floats, rows: number, training: boolean): Floats {
    const { channels: C, spatial: S, epsilon } = this;
    const stride = C * S; // from one sample's channel c to the next sample's
    for (let c = 0; c < C; c++) {
      let mean: number;
      let invStd: number;
      if (training) {
        const m = rows * S;
        let sum = 0;
        for (let r = 0, at = c * S; r < rows; r++, at += stride) for (let s = 0; s < S; s++) sum += input[at + s];
        mean = sum / m;
        let squares = 0;
        for (let r = 0, at = c * S; r < rows; r++, at += stride) {
          for (let s = 0; s < S; s++) {
            const d = input[at + s] - mean;
            squares += d * d;
          }
        }
        const variance = squares / m;
        invStd = 1 / Math.sqrt(variance + epsilon);
        this.invStd[c] = invStd;
        // One value per channel says nothing about the spread (PyTorch refuses to train on it):
        // the running statistics are left alone then, rather than pulled towards a variance of 0.
        if (m > 1) {
          const k = this.momentum;
          this.runningMean[c] = (1 - k) * this.runningMean[c] + k * mean;
          this.runningVar[c] = (1 - k) * this.runningVar[c] + (k * squares) / (m - 1);
        }
      } else {
        mean = this.runningMean[c];
        invStd = 1 / Math.sqrt(this.runningVar[c] + epsilon);
      }
      const gamma = this.gamma[c];
      const beta = this.beta[c];
      for (let r = 0, at = c * S; r < rows; r++, at += stride) {
        for (let s = at; s < at + S; s++) {
          const xHat = (input[s] - mean) * invStd;
          if (training) this.normalised[s] = xHat;
          this.output[s] = gamma * xHat + beta;
        }
      }
    }
    return this.output;
  }

  /**
   * With g = dL/dy and sums over the channel's m values of the batch:
   *   dL/dgamma = Σ g·x̂,  dL/dbeta = Σ g,
   *   dL/dx = gamma/(m·sqrt(var + eps)) · (m·g - Σ g - x̂·Σ g·x̂)
   * (the mean and variance depend on every x, hence the two correction terms).
   */
  backward(gradOutput: Floats, rows: number): Floats | null {
    const { channels: C, spatial: S } = this;
    const stride = C * S;
    const m = rows * S;
    for (let c = 0; c < C; c++) {
      let sumG = 0;
      let sumGX = 0;
      for (let r = 0, at = c * S; r < rows; r++, at += stride) {
        for (let s = at; s < at + S; s++) {
          sumG += gradOutput[s];
          sumGX += gradOutput[s] * this.normalised[s];
        }
      }
      this.gammaGrad[c] = sumGX;
      this.betaGrad[c] = sumG;
      if (!this.needsInputGrad) continue;
      const scale = (this.gamma[c] * this.invStd[c]) / m;
      // In place: each value of g is read once, just before it is replaced.
      for (let r = 0, at = c * S; r < rows; r++, at += stride) {
        for (let s = at; s < at + S; s++) gradOutput[s] = scale * (m * gradOutput[s] - sumG - this.normalised[s] * sumGX);
      }
    }
    return this.needsInputGrad ? gradOutput : null;
  }

  exportTensors(): NamedTensor[] {
    const c = [this.channels];
    return [
      { name: `${this.index}.weight`, shape: c, data: Float32Array.from(this.gamma) },
      { name: `${this.index}.bias`, shape: c, data: Float32Array.from(this.beta) },
      { name: `${this.index}.running_mean`, shape: c, data: Float32Array.from(this.runningMean) },
      { name: `${this.index}.running_var`, shape: c, data: Float32Array.from(this.runningVar) },
    ];
  }

  importTensors(lookup: TensorLookup): void {
    const c = [this.channels];
    const targets: [string, Floats][] = [
      ["weight", this.gamma],
      ["bias", this.beta],
      ["running_mean", this.runningMean],
      ["running_var", this.runningVar],
    ];
    for (const [name, target] of targets) {
      const values = lookup(`${this.index}.${name}`, c);
      for (let i = 0; i < this.channels; i++) target[i] = values[i];
    }
  }
}
