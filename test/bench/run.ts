// `npm run bench`: our trainer against TensorFlow.js (cpu, wasm) and PyTorch on four workloads.
//
//   npm run bench [-- --quick] [--json <file>] [--only W1,W3] [--peers ours,tfjs-cpu,tfjs-wasm,torch]
//                 [--retries 1] [--quiet-wait 120]
//
// Every peer runs in its own child process, one at a time (never two peers at once), so none
// disturbs another; the only concurrent children are the two single-thread ours processes of the
// ceiling check, which is the point of that check (they take turns with a 2-thread ours process,
// run by run, so that both sides of that ratio are timed seconds apart, not minutes). See
// workloads.ts for the workloads and protocol.ts for the timing protocol (warm-up excluded, median
// of several timed runs).
import { writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { blasAlternative, runGroup, runOne, startChild, torchAvailable, waitForQuiet } from "./children.js";
import { coreRoundTrip } from "./core-latency.js";
import { FULL_PLAN, median, PEER_IDS, QUICK_PLAN, type ChildRequest, type ChildResult, type PeerId, type TimingPlan } from "./protocol.js";
import { DISTURBED_CORES, formatReport, type BenchReport, type ConcurrencyResult, type HeapResult, type Row } from "./report.js";
import { gemmFlopsPerSample, WORKLOAD_IDS, WORKLOADS, type WorkloadId } from "./workloads.js";

const SEED = 1234;
const HEAP_STEPS = 1000;
const HEAP_TARGET_BYTES = 1_000_000;
/** Workloads whose 2-core ceiling is measured with two concurrent single-thread processes. */
const CEILING_WORKLOADS: WorkloadId[] = ["W1", "W2"];

function parseList<T extends string>(value: string | undefined, allowed: readonly T[], what: string): T[] {
  if (value === undefined) return [...allowed];
  const items = value.split(",").map((s) => s.trim()).filter(Boolean);
  const expanded = items.flatMap((s) => (s === "tfjs" ? ["tfjs-cpu", "tfjs-wasm"] : [s]));
  for (const item of expanded) {
    if (!allowed.includes(item as T)) throw new Error(`--${what}: unknown "${item}"; choose from ${allowed.join(", ")}`);
  }
  return allowed.filter((a) => expanded.includes(a));
}

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    json: { type: "string" },
    only: { type: "string" },
    peers: { type: "string" },
    retries: { type: "string", default: "1" },
    "quiet-wait": { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(
    "usage: npm run bench -- [--quick] [--json <file>] [--only W1,W2,W3,W4] [--peers ours,tfjs-cpu,tfjs-wasm,torch]\n" +
      "                        [--retries 1] [--quiet-wait 120]\n" +
      "  --retries: how many times a figure disturbed by other work on the machine is measured again (default 1)\n" +
      "  --quiet-wait: seconds to wait, before each measurement, for the machine to be quiet (default 120; 0 with --quick)",
  );
  process.exit(0);
}
const workloadIds = parseList(args.only?.toUpperCase(), WORKLOAD_IDS, "only");
const peers = parseList<PeerId>(args.peers, PEER_IDS, "peers");
const plan: TimingPlan = args.quick ? QUICK_PLAN : FULL_PLAN;
const timeoutMs = args.quick ? 180_000 : 900_000;
const retries = Number(args.retries);
if (!Number.isInteger(retries) || retries < 0) throw new Error("--retries must be a non-negative integer");
const quietWait = Number(args["quiet-wait"] ?? (args.quick ? 0 : 120));
if (!(quietWait >= 0)) throw new Error("--quiet-wait must be a number of seconds >= 0");

/** Before each measurement: wait for the machine to be quiet (see waitForQuiet). */
async function quietMoment(): Promise<void> {
  if (quietWait === 0) return;
  const waited = await waitForQuiet(quietWait, DISTURBED_CORES);
  if (waited >= quietWait) progress(`    the machine stayed busy for ${quietWait} s; measuring anyway`);
  else if (waited > 2) progress(`    waited ${waited.toFixed(0)} s for the machine to be quiet`);
}

const torch = peers.includes("torch") ? torchAvailable() : null;
const rows: Row[] = [];
const concurrency: ConcurrencyResult[] = [];
const notes = new Set<string>();
let heap: HeapResult | null = null;

function request(peer: PeerId, id: WorkloadId, threads: number, extra: Partial<ChildRequest> = {}): ChildRequest {
  return { peer, workload: WORKLOADS[id], threads, plan, mode: "throughput", seed: SEED, ...extra };
}

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

function toRow(id: WorkloadId, peer: string, threads: number, result: ChildResult): Row {
  const flops = gemmFlopsPerSample(WORKLOADS[id]);
  const base: Row = {
    workload: id,
    peer,
    threads,
    status: "error",
    samplesPerSec: null,
    runs: [],
    min: null,
    max: null,
    spreadPct: null,
    stepsPerRun: null,
    warmupSteps: null,
    gflops: null,
    otherCores: null,
    ownCores: null,
    oursRatio: null,
    note: null,
    info: result.info,
  };
  if (!result.ok) return { ...base, status: result.status, note: result.error };
  const m = result.measurement!;
  return {
    ...base,
    status: "ok",
    samplesPerSec: m.median,
    runs: m.runs,
    min: m.min,
    max: m.max,
    spreadPct: ((m.max - m.min) / m.median) * 100,
    stepsPerRun: m.stepsPerRun,
    warmupSteps: m.warmupSteps,
    gflops: flops !== null ? (m.median * flops) / 1e9 : null,
    otherCores: m.otherCores,
    ownCores: m.ownCores ?? null,
  };
}

/** Measures one row; a figure disturbed by other work on the machine is measured again (up to
 *  --retries times), keeping the least disturbed one. */
async function measureRow(id: WorkloadId, peer: string, threads: number, req: ChildRequest): Promise<Row> {
  progress(`  ${id} ${peer} threads=${threads} ...`);
  let row: Row | null = null;
  for (let attempt = 0; attempt <= retries; attempt++) {
    await quietMoment();
    const next = toRow(id, peer, threads, await runOne(req, timeoutMs));
    const other = next.otherCores !== null ? ` (own cpu ${next.ownCores?.toFixed(2)}, other load ${next.otherCores.toFixed(2)} cores)` : "";
    progress(`    ${next.status === "ok" ? `${Math.round(next.samplesPerSec!)} samples/s${other}` : `${next.status}: ${next.note}`}`);
    if (row === null || (next.status === "ok" && (next.otherCores ?? 0) < (row.otherCores ?? 0))) row = next;
    if (row.status !== "ok" || row.otherCores === null || row.otherCores <= DISTURBED_CORES) break;
    if (attempt < retries) progress("    disturbed by other work; measuring again");
  }
  rows.push(row!);
  collectNotes(row!);
  return row!;
}

function collectNotes(row: Row): void {
  const i = row.info;
  if (row.peer === "torch" && i.blas) {
    const alt = blasAlternative();
    const altText = alt ? `update-alternatives libblas.so.3-x86_64-linux-gnu -> ${alt.value} (choices: ${alt.choices.join(", ")})` : "update-alternatives not queried";
    const openblas = i.blas === "OpenBLAS";
    notes.add(
      `PyTorch ${i.torch} uses ${openblas ? "OpenBLAS" : "NOT OpenBLAS"} for GEMMs: build ${i.buildBlas} (Debian links the generic libblas.so.3), ` +
        `${altText}; mapped: ${i.blasLibraries}${i.openblasConfig ? `; ${i.openblasConfig}` : ""}; oneDNN (convolutions) available: ${i.mkldnn}; ` +
        `denormals flushed to zero (torch.set_flush_denormal): ${i.flushDenormal}.` +
        (openblas
          ? ""
          : ` To use OpenBLAS: apt install libopenblas0-openmp (it registers /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3) and ` +
            `update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3.`),
    );
  }
  if (row.peer === "tfjs-wasm" && i.binary) notes.add(`TF.js wasm: ${i.binary}, SIMD ${i.simd}, XNNPACK threads ${i.xnnpackThreads} (Node: no threaded build).`);
  if (row.peer.startsWith("ours") && i.kernels) notes.add(`${row.peer}: kernels ${i.kernels}, node ${i.node}.`);
}

async function runWorkload(id: WorkloadId): Promise<void> {
  progress(`${id}: ${WORKLOADS[id].title}`);
  let ours1: Row | null = null;
  let ours2: Row | null = null;
  if (peers.includes("ours")) {
    ours1 = await measureRow(id, "ours", 1, request("ours", id, 1));
    await measureRow(id, "ours (js kernels)", 1, request("ours", id, 1, { kernels: "js" }));
    ours2 = await measureRow(id, "ours", 2, request("ours", id, 2));
  }
  for (const peer of ["tfjs-cpu", "tfjs-wasm"] as const) {
    if (peers.includes(peer)) await measureRow(id, peer, 1, request(peer, id, 1));
  }
  if (torch) {
    for (const threads of [1, 2]) {
      if (torch.ok) await measureRow(id, "torch", threads, request("torch", id, threads));
      else rows.push(toRow(id, "torch", threads, { ok: false, status: "skipped", error: torch.reason, info: {} }));
    }
  }
  if (ours1 && CEILING_WORKLOADS.includes(id)) concurrency.push(await ceiling(id, ours1, ours2));
}

/**
 * The 2-core ceiling against 2 threads. Two single-thread ours processes time the same intervals
 * (their sum is what this machine does with two cores busy), and a third, ours with 2 threads,
 * takes turns with them run by run: pair, 2 threads, 2 threads, pair, ... All three stay warm
 * between turns. The machine's speed drifts by tens of percent over minutes, so a ratio of two
 * figures timed minutes apart says more about the drift than about the threads; each round's ratio
 * here compares runs a couple of seconds apart, and the result is the median round.
 */
async function ceiling(id: WorkloadId, ours1: Row, ours2: Row | null): Promise<ConcurrencyResult> {
  progress(`  ${id} ours x2 processes (1 thread each, concurrently), taking turns with ours threads=2 ...`);
  const rounds = plan.runs * 2 - 1;
  const runs = rounds + 1;
  // Barrier runs last plan.runSeconds each (protocol.ts): the pair is busy over the same interval.
  const single = request("ours", id, 1, { plan: { ...plan, runs }, barrier: true });
  const withTwo = ours2?.status === "ok";
  const two = request("ours", id, 2, { plan: { ...plan, runs }, barrier: true });
  await quietMoment();
  const pair = [startChild(single, timeoutMs), startChild(single, timeoutMs)];
  const threaded = withTwo ? startChild(two, timeoutMs) : null;
  const perRound: { pair: number[]; two: number | null; roundTrip: number | null }[] = [];
  // Round -1 is not counted: the three warmed up at the same time on two cores, so each did less
  // warm-up than a lone process does.
  for (let r = -1; r < rounds; r++) {
    const twoFirst = r % 2 === 1;
    let two: number | null = null;
    // Where the host has the two cores now (core-latency.ts), measured just before the 2-thread turn.
    let roundTrip: number | null = null;
    const runTwo = async () => {
      roundTrip = await coreRoundTrip();
      [two] = await runGroup([threaded!]);
    };
    if (threaded && twoFirst) await runTwo();
    const pairRuns = await runGroup(pair);
    if (threaded && !twoFirst) await runTwo();
    if (pairRuns.some((v) => v === null)) break;
    if (r >= 0) perRound.push({ pair: pairRuns as number[], two, roundTrip });
  }
  const children = [...pair, ...(threaded ? [threaded] : [])];
  // A child that died ended the rounds early: the others would wait at their barrier for ever.
  for (const c of children) c.stop();
  const results = await Promise.all(children.map((c) => c.result));
  const failed = results.find((r) => !r.ok);
  if (failed && !failed.ok) {
    return { workload: id, perProcess: [], otherCores: [], combined: null, twoThreads: null, ratio: null, rounds: [], note: `failed: ${failed.error}` };
  }
  const perProcess = [0, 1].map((i) => median(perRound.map((p) => p.pair[i])));
  const otherCores = results.slice(0, 2).map((r) => (r.ok ? r.measurement!.otherCores : null));
  const combined = median(perRound.map((p) => p.pair[0] + p.pair[1]));
  const twoRuns = perRound.map((p) => p.two).filter((v): v is number => v !== null);
  const twoThreads = twoRuns.length > 0 ? median(twoRuns) : null;
  const ratios = perRound.filter((p) => p.two !== null).map((p) => p.two! / (p.pair[0] + p.pair[1]));
  progress(`    ${perProcess.map(Math.round).join(" + ")} = ${Math.round(combined)} samples/s; 2 threads ${twoThreads === null ? "n/a" : Math.round(twoThreads)}`);
  return {
    workload: id,
    perProcess,
    otherCores,
    combined,
    twoThreads,
    ratio: ratios.length > 0 ? median(ratios) : null,
    rounds: perRound.map((p) => ({ pair: p.pair, twoThreads: p.two, roundTripNs: p.roundTrip })),
    note: withTwo ? null : (ours2?.note ?? "ours with 2 threads was not measured"),
  };
}

async function heapCheck(): Promise<HeapResult> {
  progress(`W1 heap growth of ours over ${HEAP_STEPS} warm steps ...`);
  await quietMoment();
  const result = await runOne(request("ours", "W1", 1, { mode: "heap", heapSteps: HEAP_STEPS }), timeoutMs);
  if (!result.ok || !result.heap) {
    return { workload: "W1", targetBytes: HEAP_TARGET_BYTES, pass: null, note: result.ok ? "no heap figures" : `${result.status}: ${result.error}` };
  }
  return { workload: "W1", ...result.heap, targetBytes: HEAP_TARGET_BYTES, pass: result.heap.growthBytes < HEAP_TARGET_BYTES, note: null };
}

/** ours ÷ peer, for every peer row that has ours (default kernels, same threads) to compare with. */
function fillRatios(): void {
  for (const row of rows) {
    if (row.peer === "ours" || row.samplesPerSec === null) continue;
    const ours = rows.find((r) => r.workload === row.workload && r.peer === "ours" && r.threads === row.threads && r.samplesPerSec !== null);
    if (ours) row.oursRatio = ours.samplesPerSec! / row.samplesPerSec;
  }
}

const started = Date.now();
const loadBefore = loadavg()[0].toFixed(2);
for (const id of workloadIds) await runWorkload(id);
if (peers.includes("ours") && workloadIds.includes("W1")) heap = await heapCheck();
fillRatios();
if (torch && !torch.ok) notes.add(`PyTorch skipped: ${torch.reason}`);

const report: BenchReport = {
  meta: {
    date: new Date().toISOString(),
    mode: args.quick ? "quick" : "full",
    cpu: cpus()[0]?.model ?? "unknown",
    cpus: cpus().length,
    node: process.version,
    warmup: `>= ${plan.warmupSteps} steps and ${plan.warmupMinSeconds} s`,
    runs: plan.runs,
    run_seconds: plan.runSeconds,
    seconds: Math.round((Date.now() - started) / 1000),
    // Other work on the machine disturbs every figure; the 1-minute load average before and after.
    load_before: loadBefore,
    load_after: loadavg()[0].toFixed(2),
    torch: torch === null ? "not selected" : torch.ok ? "available" : "skipped",
  },
  workloads: workloadIds.map((id) => ({ id, title: WORKLOADS[id].title, batch: WORKLOADS[id].batch, gemmFlopsPerSample: gemmFlopsPerSample(WORKLOADS[id]) })),
  rows,
  concurrency,
  heap,
  notes: [...notes],
};
console.log(formatReport(report));
if (args.json) {
  writeFileSync(args.json, JSON.stringify(report, null, 2) + "\n");
  console.log(`\nJSON written to ${args.json}`);
}
