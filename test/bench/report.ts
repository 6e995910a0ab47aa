// The bench's results: what run.ts collects, and the table it prints (the same data goes to
// --json as is).
import type { HeapMeasurement } from "./protocol.js";
import type { WorkloadId } from "./workloads.js";

export type RowStatus = "ok" | "cannot" | "skipped" | "n/a" | "error";

export interface Row {
  workload: WorkloadId;
  /** ours, "ours (js kernels)", tfjs-cpu, tfjs-wasm, torch. */
  peer: string;
  threads: number;
  status: RowStatus;
  /** Median over the timed runs; null unless status is ok. */
  samplesPerSec: number | null;
  runs: number[];
  min: number | null;
  max: number | null;
  /** (max - min) / median, in percent. */
  spreadPct: number | null;
  stepsPerRun: number | null;
  warmupSteps: number | null;
  /** GEMM GFLOP/s implied by samplesPerSec (W1 and W4: dense layers only). */
  gflops: number | null;
  /** Cores busy with other work during the timed runs (see Measurement.otherCores). */
  otherCores: number | null;
  /** The peer's own CPU time per second during the timed runs (about the threads it really used). */
  ownCores: number | null;
  /** ours (default kernels, same threads) ÷ this peer; null for ours itself or without figures. */
  oursRatio: number | null;
  /** Why there is no figure (status not ok). */
  note: string | null;
  info: Record<string, string>;
}

export interface ConcurrencyResult {
  workload: WorkloadId;
  /** Each single-thread process's median, both timed over the same intervals. */
  perProcess: number[];
  /** Cores busy with other work, as each process saw it (its sibling counts: about 1 each). */
  otherCores: (number | null)[];
  /** The median round's sum: what this machine can do with two cores busy. */
  combined: number | null;
  /** ours with 2 threads in one process, median of its turns; null when it was not measured. */
  twoThreads: number | null;
  /** The median over rounds of (2 threads ÷ the pair's sum in the same round); target >= 0.85. */
  ratio: number | null;
  /** Each round: both single-thread processes' samples/s, the 2-thread turn next to them, and the
   *  cores' round trip just before that turn (core-latency.ts; null where not measured). */
  rounds: { pair: number[]; twoThreads: number | null; roundTripNs: number | null }[];
  note: string | null;
}

export interface HeapResult extends Partial<HeapMeasurement> {
  workload: WorkloadId;
  targetBytes: number;
  pass: boolean | null;
  note: string | null;
}

export interface BenchReport {
  meta: Record<string, string | number | boolean>;
  workloads: { id: WorkloadId; title: string; batch: number; gemmFlopsPerSample: number | null }[];
  rows: Row[];
  concurrency: ConcurrencyResult[];
  heap: HeapResult | null;
  /** Environment facts the peers reported: torch's BLAS, the wasm binary, kernels in use. */
  notes: string[];
}

const fmtInt = (n: number) => Math.round(n).toLocaleString("en-US");
/** Other work above this many cores during a measurement marks the figure as disturbed. */
export const DISTURBED_CORES = 0.25;
const fmtOther = (c: number | null, expected = 0) => (c === null ? "?" : `${Math.max(0, c).toFixed(2)}${c - expected > DISTURBED_CORES ? " !" : ""}`);
const fmtRatio = (r: number) => (r >= 10 ? r.toFixed(1) : r.toFixed(2)) + "x";

function pad(s: string, width: number, right = false): string {
  return right ? s.padStart(width) : s.padEnd(width);
}

export function formatReport(report: BenchReport): string {
  const out: string[] = [];
  out.push(`Benchmark (${Object.entries(report.meta).map(([k, v]) => `${k}: ${v}`).join(", ")})`);
  out.push("");
  for (const w of report.workloads) {
    const flops = w.gemmFlopsPerSample ? `; ${(w.gemmFlopsPerSample / 1e6).toFixed(3)} MFLOP/sample in GEMMs` : "";
    out.push(`  ${w.id}: ${w.title}${flops}`);
  }
  out.push("");
  const header = [
    pad("workload", 8),
    pad("peer", 18),
    pad("threads", 7, true),
    pad("samples/s", 12, true),
    pad("spread (min-max, range)", 32),
    pad("GFLOP/s", 8, true),
    pad("ours/peer", 10, true),
    pad("cpu", 4, true),
    pad("other", 6, true),
  ];
  out.push(header.join("  "));
  out.push("-".repeat(header.join("  ").length));
  let last = "";
  for (const row of report.rows) {
    if (last && row.workload !== last) out.push("");
    last = row.workload;
    const cells = [pad(row.workload, 8), pad(row.peer, 18), pad(String(row.threads), 7, true)];
    if (row.status === "ok" && row.samplesPerSec !== null) {
      cells.push(
        pad(fmtInt(row.samplesPerSec), 12, true),
        pad(`${fmtInt(row.min!)}-${fmtInt(row.max!)} (${row.spreadPct!.toFixed(1)}%)`, 32),
        pad(row.gflops !== null ? row.gflops.toFixed(2) : "", 8, true),
        pad(row.oursRatio !== null ? fmtRatio(row.oursRatio) : "", 10, true),
        pad(row.ownCores !== null ? row.ownCores.toFixed(2) : "?", 4, true),
        pad(fmtOther(row.otherCores), 6, true),
      );
    } else {
      const label = row.status === "cannot" ? "cannot train" : row.status;
      cells.push(pad(label, 12, true), `${row.note ?? ""}`);
    }
    out.push(cells.join("  ").trimEnd());
  }
  if (report.concurrency.length > 0) {
    out.push("");
    out.push(
      "Two single-thread ours processes at the same time (the 2-core ceiling) vs ours with 2 threads, taking turns run by run " +
        "(ratio: the median round's; target >= 0.85x):",
    );
    for (const c of report.concurrency) {
      if (c.combined === null) {
        out.push(`  ${c.workload}: ${c.note}`);
        continue;
      }
      const two = c.twoThreads !== null ? `${fmtInt(c.twoThreads)} samples/s -> ${fmtRatio(c.ratio!)} of combined` : `n/a (${c.note})`;
      out.push(
        `  ${c.workload}: ${c.perProcess.map(fmtInt).join(" + ")} (medians) = ${fmtInt(c.combined)} samples/s combined ` +
          `(other: ${c.otherCores.map((o) => fmtOther(o, 1)).join(", ")}, ~1 is the sibling); 2 threads: ${two}`,
      );
      const rounds = c.rounds.map(
        (r) =>
          `${fmtInt(r.pair[0] + r.pair[1])}/${r.twoThreads === null ? "-" : fmtInt(r.twoThreads)}` +
          `/${r.roundTripNs === null ? "-" : Math.round(r.roundTripNs)}`,
      );
      if (rounds.length > 0) out.push(`      rounds (pair sum / 2 threads / cores' round trip in ns): ${rounds.join(", ")}`);
    }
  }
  if (report.heap) {
    const h = report.heap;
    out.push("");
    if (h.growthBytes === undefined) out.push(`Heap growth of ours over warm ${h.workload} steps: ${h.note}`);
    else {
      out.push(
        `Heap growth of ours over ${h.steps} warm ${h.workload} steps: ${(h.growthBytes / 1024).toFixed(1)} KiB ` +
          `(heapUsed ${(h.beforeBytes! / 2 ** 20).toFixed(2)} -> ${(h.afterBytes! / 2 ** 20).toFixed(2)} MiB after gc; target < 1 MB: ${h.pass ? "pass" : "FAIL"}); ` +
          `arrayBuffers ${(h.arrayBuffersGrowthBytes! / 1024).toFixed(1)} KiB`,
      );
    }
  }
  out.push("");
  out.push(
    `"cpu": the peer's own CPU seconds per second while timed (the cores it really kept busy); "other": cores busy with other ` +
      `work on the machine meanwhile (machine CPU time minus the peer's own); "!" marks a figure disturbed by more than ${DISTURBED_CORES} of a core.`,
  );
  if (report.notes.length > 0) {
    out.push("");
    for (const note of report.notes) out.push(`Note: ${note}`);
  }
  return out.join("\n");
}
