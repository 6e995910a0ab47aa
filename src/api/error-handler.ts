// The one place where thrown errors become HTTP answers of the shape
// `{ "error": { "code", "message", "param" } }`. 5xx answers never carry internals.
import type { FastifyError, FastifyInstance } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import { AppError, type ErrorCode } from "../errors.js";
import { issueParam } from "../trainer/index.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** Error code for a body that fails its schema (default `invalid_request`). */
    bodyErrorCode?: ErrorCode;
  }
}

interface ValidationEntry {
  instancePath: string;
  message?: string;
  keyword?: string;
  params?: Record<string, unknown>;
}

/** The dotted path of the field a validation issue is about, e.g. `model.layers.0.type`. */
export function validationParam(entry: ValidationEntry, context?: string): string | null {
  const path = entry.instancePath.split("/").filter((p) => p !== "");
  const param = issueParam({ ...(entry.params as object), code: entry.keyword ?? "", path });
  if (param === "") return context === "body" ? null : (context ?? null);
  return param;
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setNotFoundHandler((req, reply) => {
    const err = new AppError("not_found", `No route ${req.method} ${req.url.split("?")[0]}.`);
    void reply.code(err.status).send(err.toBody());
  });

  app.setErrorHandler((error: FastifyError | AppError | Error, req, reply) => {
    const appErr = toAppError(error, req.routeOptions.config?.bodyErrorCode);
    if (appErr.status >= 500) req.log.error({ err: error }, "request failed");
    void reply.code(appErr.status).send(appErr.toBody());
  });
}

function toAppError(error: unknown, bodyErrorCode: ErrorCode | undefined): AppError {
  if (error instanceof AppError) return error;
  if (hasZodFastifySchemaValidationErrors(error)) {
    const context = (error as { validationContext?: string }).validationContext;
    const first = (error as { validation: ValidationEntry[] }).validation[0];
    const param = validationParam(first, context);
    const code = context === "body" && bodyErrorCode ? bodyErrorCode : "invalid_request";
    const where = param ? `${param}: ` : "";
    return new AppError(code, `${where}${first.message ?? "invalid value"}`, param);
  }
  const fe = error as Partial<FastifyError> & { statusCode?: number };
  switch (fe.code) {
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new AppError("unsupported_media_type", fe.message, "content-type");
    case "FST_ERR_CTP_BODY_TOO_LARGE":
    case "FST_REQ_FILE_TOO_LARGE":
      return new AppError("payload_too_large", fe.message, "file");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new AppError("invalid_request", "The body is not valid JSON.", "body");
  }
  if (fe.statusCode === 413) return new AppError("payload_too_large", fe.message, "file");
  if (fe.statusCode === 415) return new AppError("unsupported_media_type", fe.message, "content-type");
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new AppError("invalid_request", fe.message ?? "The request is not valid.", null);
  }
  return new AppError("internal");
}
