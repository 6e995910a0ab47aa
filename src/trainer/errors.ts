// Errors the trainer raises on purpose. Their codes are the job-failure codes of DESIGN.md, so the
// worker can store `{ code, message }` as the job's error without translating. Anything else thrown
// from the trainer is a bug and becomes `internal`.

export type TrainerErrorCode = "diverged" | "invalid_config" | "dataset_mismatch";

export class TrainerError extends Error {
  readonly code: TrainerErrorCode;

  constructor(code: TrainerErrorCode, message: string) {
    super(message);
    this.name = "TrainerError";
    this.code = code;
  }

  /** Errors cross the worker-thread boundary as plain data. */
  toJSON(): { code: TrainerErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}
