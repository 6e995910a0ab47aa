// Telling a database that is briefly away (restarting, failing over, refusing connections, a
// connection cut) from a query that is wrong, and retrying only the former.
//
// Prisma 7 with adapter-pg reports these as PrismaClientKnownRequestError whose
// meta.driverAdapterError.cause is either `{ kind: "DatabaseNotReachable" | "ConnectionClosed" | ... }`
// or `{ kind: "postgres", code: "<SQLSTATE>" }`; pg itself throws plain errors for a cut socket.

/** Prisma error codes that mean "could not talk to the database" rather than "the query is wrong". */
const PRISMA_CODES = new Set(["P1001", "P1002", "P1008", "P1017", "P2024", "P2028"]);

/** Driver adapter error kinds of the same nature. */
const ADAPTER_KINDS = new Set([
  "DatabaseNotReachable",
  "DatabaseDoesNotExist", // a database being renamed or restored
  "ConnectionClosed",
  "SocketTimeout",
  "TooManyConnections",
  "TlsConnectionError",
  "TransactionAlreadyClosed",
  "TransactionWriteConflict",
]);

/**
 * SQLSTATEs: class 08 (connection exception), 57P01-57P03 (admin or crash shutdown, cannot connect
 * now), 53300 (too many connections), 3D000 (database does not exist), 40001/40P01 (serialization
 * failure, deadlock: retrying is the documented answer).
 */
function transientSqlState(code: string, message: string): boolean {
  return (
    code.startsWith("08") ||
    /^57P0[123]$/.test(code) ||
    code === "53300" ||
    code === "3D000" ||
    code === "40001" ||
    code === "40P01" ||
    (code === "55000" && /accepting connections/i.test(message))
  );
}

const NODE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ENOTFOUND"]);
const MESSAGES = /connection terminated|connection ended|connection (is )?closed|connection refused|timeout exceeded when trying to connect|terminating connection|server closed the connection/i;

/** True when `err` says the database could not be reached or dropped the connection. */
export function isTransientDbError(err: unknown): boolean {
  const seen = new Set<unknown>();
  const queue: unknown[] = [err];
  while (queue.length > 0) {
    const e = queue.shift();
    if (!e || typeof e !== "object" || seen.has(e)) continue;
    seen.add(e);
    const o = e as { code?: unknown; kind?: unknown; message?: unknown; cause?: unknown; meta?: { driverAdapterError?: unknown } };
    const code = typeof o.code === "string" ? o.code : "";
    const message = typeof o.message === "string" ? o.message : "";
    if (PRISMA_CODES.has(code) || NODE_CODES.has(code)) return true;
    if (typeof o.kind === "string") {
      if (ADAPTER_KINDS.has(o.kind)) return true;
      if (o.kind === "postgres" && transientSqlState(code, message)) return true;
    }
    if (MESSAGES.test(message)) return true;
    queue.push(o.cause, o.meta?.driverAdapterError);
  }
  return false;
}

export interface RetryOptions {
  /** Give up (rethrowing the last error) once this much time has passed. */
  maxMs: number;
  /** First pause; each later one doubles, up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Called before each pause. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Runs `fn`, retrying it while it fails with a transient database error, for up to `maxMs`. `fn`
 * must be idempotent (every write here is keyed by job and epoch) since a failure may come after
 * the database applied it.
 */
export async function withDbRetry<T>(fn: () => Promise<T>, opts: RetryOptions): Promise<T> {
  const deadline = Date.now() + opts.maxMs;
  let delay = opts.initialDelayMs ?? 200;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransientDbError(err) || Date.now() + delay > deadline) throw err;
      opts.onRetry?.(err, attempt, delay);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, opts.maxDelayMs ?? 2_000);
    }
  }
}
