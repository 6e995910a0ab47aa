// Starting peer children and reading their results (see protocol.ts for what they print).
import { spawn, spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { machineCpu, READY_MARKER, RESULT_MARKER, RUN_MARKER, type ChildRequest, type ChildResult } from "./protocol.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const PYTHON = "/usr/bin/python3";

/**
 * PyTorch's environment: OpenBLAS chooses its own core type and cache sizes (no
 * OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides), and glibc's malloc keeps freed memory instead
 * of returning it to the kernel every step (mmap/trim thresholds, top pad), as a tuned deployment
 * would run it.
 */
export function torchEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  env.MALLOC_MMAP_THRESHOLD_ = "1073741824";
  env.MALLOC_TRIM_THRESHOLD_ = "4294967296";
  env.MALLOC_TOP_PAD_ = "268435456";
  return env;
}

/** Whether `python3 -c "import torch"` works; the reason when it does not. */
export function torchAvailable(): { ok: true } | { ok: false; reason: string } {
  const r = spawnSync(PYTHON, ["-c", "import torch"], { env: torchEnv(), encoding: "utf8", timeout: 120_000 });
  if (r.error) return { ok: false, reason: `${PYTHON}: ${r.error.message}` };
  if (r.status !== 0) {
    const lines = (r.stderr || r.stdout || "").trim().split("\n");
    return { ok: false, reason: `import torch failed: ${lines[lines.length - 1] ?? `exit ${r.status}`}` };
  }
  return { ok: true };
}

/** The libblas.so.3 alternative in use (Debian's torch links the generic libblas.so.3), or null. */
export function blasAlternative(): { value: string; choices: string[] } | null {
  const r = spawnSync("update-alternatives", ["--query", "libblas.so.3-x86_64-linux-gnu"], { encoding: "utf8" });
  if (r.status !== 0 || !r.stdout) return null;
  const value = /^Value: (.*)$/m.exec(r.stdout)?.[1] ?? "";
  const choices = [...r.stdout.matchAll(/^Alternative: (.*)$/gm)].map((m) => m[1]);
  return { value, choices };
}

/** Cores the machine keeps busy over the next `ms` milliseconds (null where unknown). */
async function busyCores(ms: number): Promise<number | null> {
  const from = machineCpu();
  await new Promise((r) => setTimeout(r, ms));
  const to = machineCpu();
  if (!from || !to || to.total === from.total) return null;
  return ((to.busy - from.busy) / (to.total - from.total)) * cpus().length;
}

/**
 * Waits (up to `maxSeconds`) until the machine is quiet: less than `threshold` of a core busy over
 * one second. Other people's work disturbs our figures and ours disturbs theirs, so the bench
 * starts each measurement in a quiet moment when it can. Returns the seconds waited.
 */
export async function waitForQuiet(maxSeconds: number, threshold: number): Promise<number> {
  const started = Date.now();
  while ((Date.now() - started) / 1000 < maxSeconds) {
    const busy = await busyCores(1000);
    if (busy === null || busy < threshold) break;
  }
  return (Date.now() - started) / 1000;
}

/** The command line that runs a request's peer. */
function command(request: ChildRequest): { file: string; args: string[]; env: NodeJS.ProcessEnv } {
  const json = JSON.stringify(request);
  switch (request.peer) {
    case "ours":
      // --expose-gc for the heap check; the same flags for every ours child, so they run alike.
      return { file: process.execPath, args: ["--expose-gc", "--import", "tsx", "test/bench/peers/ours.ts", json], env: process.env };
    case "tfjs-cpu":
    case "tfjs-wasm":
      return { file: process.execPath, args: ["--import", "tsx", "test/bench/peers/tfjs.ts", json], env: process.env };
    case "torch":
      return { file: PYTHON, args: ["test/bench/peers/torch_bench.py", json], env: torchEnv() };
  }
}

export interface RunningChild {
  /** Resolves when the child is ready for its next timed run (barrier requests only; at once if it died). */
  ready(): Promise<void>;
  /** Lets a child waiting at the barrier time one run. */
  go(): void;
  /** The samples/s of the child's next finished run (barrier requests only); null if it died first. */
  run(): Promise<number | null>;
  /** Closes the child's stdin: a barrier child still waiting for a go then reports an error and exits. */
  stop(): void;
  /** The child's result; an error result if it died, timed out or printed none. */
  result: Promise<ChildResult>;
}

/** Lines a child printed, handed out in order to whoever waits for the next one of a kind. */
class MarkerQueue {
  private lines = new Map<string, string[]>();
  private waiters = new Map<string, ((line: string | null) => void)[]>();
  private closed = false;

  push(marker: string, rest: string): void {
    const waiter = this.waiters.get(marker)?.shift();
    if (waiter) waiter(rest);
    else this.lines.set(marker, [...(this.lines.get(marker) ?? []), rest]);
  }

  next(marker: string): Promise<string | null> {
    const line = this.lines.get(marker)?.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.set(marker, [...(this.waiters.get(marker) ?? []), resolve]));
  }

  close(): void {
    this.closed = true;
    for (const list of this.waiters.values()) for (const waiter of list) waiter(null);
    this.waiters.clear();
  }
}

export function startChild(request: ChildRequest, timeoutMs: number): RunningChild {
  const { file, args, env } = command(request);
  const child = spawn(file, args, { cwd: ROOT, env, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let scanned = 0;
  const markers = new MarkerQueue();
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    let end;
    while ((end = stdout.indexOf("\n", scanned)) >= 0) {
      const line = stdout.slice(scanned, end);
      scanned = end + 1;
      if (line === READY_MARKER) markers.push(READY_MARKER, "");
      else if (line.startsWith(RUN_MARKER)) markers.push(RUN_MARKER, line.slice(RUN_MARKER.length));
    }
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const result = new Promise<ChildResult>((resolve) => {
    child.on("error", (error) => resolve({ ok: false, status: "error", error: `could not start ${file}: ${error.message}`, info: {} }));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      markers.close(); // never leave the parent waiting on a dead child
      const line = stdout.split("\n").find((l) => l.startsWith(RESULT_MARKER));
      if (line) return resolve(JSON.parse(line.slice(RESULT_MARKER.length)) as ChildResult);
      const tail = (stderr || stdout).trim().split("\n").slice(-3).join(" | ");
      const why = timedOut ? `timed out after ${Math.round(timeoutMs / 1000)} s` : `exited with ${signal ?? code}`;
      resolve({ ok: false, status: "error", error: `${why}${tail ? `: ${tail}` : ""}`, info: {} });
    });
  });
  return {
    ready: async () => void (await markers.next(READY_MARKER)),
    go: () => {
      if (child.exitCode === null && child.stdin.writable) child.stdin.write("go\n");
    },
    run: async () => {
      const line = await markers.next(RUN_MARKER);
      return line === null ? null : Number(line);
    },
    stop: () => {
      if (child.stdin.writable) child.stdin.end();
    },
    result,
  };
}

/** One child, on its own. */
export function runOne(request: ChildRequest, timeoutMs: number): Promise<ChildResult> {
  return startChild(request, timeoutMs).result;
}

/** One timed run of a group of barrier children, all at once; each one's samples/s (null: it died). */
export async function runGroup(children: RunningChild[]): Promise<(number | null)[]> {
  await Promise.all(children.map((c) => c.ready()));
  for (const c of children) c.go();
  return Promise.all(children.map((c) => c.run()));
}
