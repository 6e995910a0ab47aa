// Gradient clipping by global norm, shared by every optimizer (torch.nn.utils.clip_grad_norm_).
import { kernels, type Floats } from "../kernels.js";

/** Added to the norm before dividing, as in PyTorch, so a zero gradient never divides by zero. */
const NORM_EPS = 1e-6;

/**
 * Measures the L2 norm of the whole gradient (every parameter of the model at once) and, when
 * `maxNorm` is given and the norm exceeds it, scales the gradient in place by
 * maxNorm / (norm + 1e-6). As in PyTorch the test is on that factor (it must be below 1), so a norm
 * within 1e-6 under maxNorm is scaled very slightly too. Returns the norm measured before scaling.
 */
export function clipGradNorm(grads: Floats, maxNorm: number | undefined): number {
  const norm = Math.sqrt(kernels.sumSquares(grads, grads.length));
  if (maxNorm !== undefined) {
    const scale = maxNorm / (norm + NORM_EPS);
    if (scale < 1) kernels.scale(grads, grads.length, scale);
  }
  return norm;
}
