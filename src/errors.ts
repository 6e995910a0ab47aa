// One catalogue of error codes. Every error a client can see is an AppError with a code from this
// list; its HTTP status comes from here, never from the call site. Bodies take the shape
// `{ "error": { "code", "message", "param" } }`.

export const errorCatalogue = {
  // 400: the request itself is malformed
  invalid_request: { status: 400, message: "The request is not valid." },
  missing_file: { status: 400, message: "No file was sent: put the file in the request body or in the multipart field `file`." },
  invalid_csv: { status: 400, message: "The CSV file could not be parsed." },
  csv_ragged_row: { status: 400, message: "A CSV row has a different number of fields from the header." },
  invalid_jsonl: { status: 400, message: "A JSON Lines record could not be parsed." },
  non_numeric_value: { status: 400, message: "A feature value is not a number." },
  empty_dataset: { status: 400, message: "The file holds no data rows." },
  unknown_column: { status: 400, message: "A named column is not in the file's header." },
  // 401
  unauthorized: { status: 401, message: "Send a valid API key as `Authorization: Bearer <key>`." },
  // 403
  forbidden: { status: 403, message: "This route needs the admin key." },
  // 404
  not_found: { status: 404, message: "No such route." },
  dataset_not_found: { status: 404, message: "No dataset has that id." },
  job_not_found: { status: 404, message: "No job has that id." },
  checkpoint_not_found: { status: 404, message: "The job has no such checkpoint." },
  key_not_found: { status: 404, message: "No API key has that id." },
  // 409
  dataset_not_ready: { status: 409, message: "The dataset is not ready." },
  job_finished: { status: 409, message: "The job has already ended." },
  dataset_in_use: { status: 409, message: "A queued or running job uses this dataset." },
  // 413, 415
  payload_too_large: { status: 413, message: "The upload is larger than the limit." },
  unsupported_media_type: { status: 415, message: "This content type is not accepted here." },
  // 422: well-formed, but cannot work
  invalid_config: { status: 422, message: "The job config is not valid." },
  dataset_mismatch: { status: 422, message: "The job config does not fit the dataset." },
  idempotency_key_reused: { status: 422, message: "This Idempotency-Key was already used with a different request body." },
  architecture_mismatch: { status: 422, message: "init_from names a job whose model (input_shape and layers) differs from this one." },
  invalid_input: { status: 422, message: "A prediction input does not match the model's input shape." },
  // 429
  too_many_jobs: { status: 429, message: "The tenant has as many queued and running jobs as it may have." },
  rate_limited: { status: 429, message: "Too many requests: slow down and retry after the number of seconds in the Retry-After header." },
  // 5xx
  internal: { status: 500, message: "Something went wrong on our side." },
  unavailable: { status: 503, message: "A backing service is unavailable." },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly param: string | null;

  constructor(code: ErrorCode, message?: string, param: string | null = null) {
    super(message ?? errorCatalogue[code].message);
    this.name = "AppError";
    this.code = code;
    this.status = errorCatalogue[code].status;
    this.param = param;
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, param: this.param } };
  }
}

export interface ErrorBody {
  error: { code: string; message: string; param: string | null };
}
