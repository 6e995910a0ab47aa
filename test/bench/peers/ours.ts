// Child entry for our trainer: `node --expose-gc --import tsx test/bench/peers/ours.ts '<request>'`.
// throughput: the timing protocol on one workload. heap: heapUsed before and after `heapSteps` warm
// steps, each read after full garbage collections, so what remains is memory the steps kept.
import { measure, runChild, type ChildRequest, type ChildResult } from "../protocol.js";
import { createOursRunner, NotAvailable } from "./ours-runner.js";

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("the heap check needs node --expose-gc");
  for (let i = 0; i < 3; i++) gc();
}

async function main(request: ChildRequest): Promise<ChildResult> {
  let runner;
  try {
    runner = await createOursRunner(request.workload, { kernels: request.kernels ?? "default", threads: request.threads, seed: request.seed });
  } catch (error) {
    if (error instanceof NotAvailable) return { ok: false, status: "n/a", error: error.message, info: {} };
    throw error;
  }
  const info = { ...runner.info, node: process.version };
  if (request.mode === "heap") {
    const steps = request.heapSteps ?? 1000;
    for (let i = 0; i < request.plan.warmupSteps; i++) runner.step();
    collect();
    const before = process.memoryUsage();
    for (let i = 0; i < steps; i++) runner.step();
    collect();
    const after = process.memoryUsage();
    const heap = {
      steps,
      beforeBytes: before.heapUsed,
      afterBytes: after.heapUsed,
      growthBytes: after.heapUsed - before.heapUsed,
      arrayBuffersGrowthBytes: after.arrayBuffers - before.arrayBuffers,
    };
    await runner.close();
    return { ok: true, heap, info };
  }
  try {
    const measurement = await measure(() => runner.step(), runner.samplesPerStep, request.plan, request.barrier);
    return { ok: true, measurement, info };
  } finally {
    await runner.close();
  }
}

await runChild(main);
