import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { FastifyRequest } from "fastify";
import { z } from "zod";
import { AppError } from "../../errors.js";
import * as service from "../../services/datasets.js";
import { listDatasets } from "../../db/datasets.js";
import type { AppContext } from "../context.js";
import { datasetSchema, datasetView, errorSchema, idParams, page, pageSchema } from "../schemas.js";

/** The raw-body content types an upload may use, and the format each implies. */
const RAW_TYPES: Record<string, "csv" | "jsonl" | undefined> = {
  "text/csv": "csv",
  "application/csv": "csv",
  "application/x-ndjson": "jsonl",
  "application/jsonl": "jsonl",
  "application/x-jsonlines": "jsonl",
  "text/plain": undefined,
  "application/octet-stream": undefined,
};

const uploadParams = z.object({
  name: z.string().min(1).max(200).regex(/^[^\u0000-\u001f\u007f]*$/, "no control characters").optional()
    .describe("A name for the dataset (default: the file name, or `dataset`)."),
  format: z.enum(["csv", "jsonl"]).optional().describe("Default: from the content type or the file name."),
  target: z.string().min(1).optional().describe("CSV: the target column(s), comma-separated (default: the last column)."),
  task: z.enum(["regression", "classification"]).optional()
    .describe("Default: classification when a target value is not a number, else regression."),
  input_shape: z.string().regex(/^\d+(,\d+)*$/, "a comma-separated list of positive integers, e.g. 1,28,28").optional()
    .describe("The shape of one input, channels first, e.g. `1,28,28`; its product must equal the number of features."),
});
type UploadParams = z.infer<typeof uploadParams>;

export const datasetRoutes = (ctx: AppContext): FastifyPluginAsyncZod => async (app) => {
  // Uploads are streamed to the parser: the body is handed over unread, never buffered whole.
  app.addContentTypeParser(Object.keys(RAW_TYPES), (_req, payload, done) => done(null, payload));

  app.post("/v1/datasets", {
    schema: {
      tags: ["datasets"],
      summary: "Upload a dataset (CSV with a header row, or JSON Lines)",
      description:
        "Send the file as the raw body (`Content-Type: text/csv` or `application/x-ndjson`) with the parameters in the query string, " +
        "or as the multipart field `file` with the parameters as fields before it.",
      querystring: uploadParams,
      response: { 201: datasetSchema, 400: errorSchema, 413: errorSchema, 415: errorSchema },
    },
  }, async (req, reply) => {
    const { source, params, fileName, contentType } = await openUpload(req, req.query, ctx.config.uploadLimitBytes);
    const format = params.format ?? formatOf(contentType, fileName);
    if (!format) {
      throw new AppError("invalid_request", "Say which format the file is in: `format=csv` or `format=jsonl`.", "format");
    }
    const counted = limitBytes(source, ctx.config.uploadLimitBytes);
    try {
      const row = await service.uploadDataset(ctx.db, req.tenant, counted, {
        name: params.name ?? fileName ?? "dataset",
        format,
        target: params.target?.split(",").map((t) => t.trim()),
        task: params.task,
        inputShape: params.input_shape?.split(",").map(Number),
      });
      return reply.code(201).send(datasetView(row));
    } catch (err) {
      // An empty body makes the parser complain about the file; say what really happened. Anything
      // else (the database unreachable, say) is not the client's missing file.
      if (counted.bytes === 0 && err instanceof AppError && err.code !== "payload_too_large") {
        throw new AppError("missing_file", undefined, "file");
      }
      throw err;
    }
  });

  app.get("/v1/datasets", {
    schema: {
      tags: ["datasets"],
      summary: "List datasets, most recent first",
      querystring: z.object({
        after: z.string().optional().describe("Cursor: the `last_id` of the previous page."),
        limit: z.coerce.number().int().min(1).max(100).default(20),
        sha256: z.string().regex(/^[0-9a-f]{64}$/, "64 lowercase hex digits").optional()
          .describe("Only datasets whose uploaded file had this SHA-256: to find out whether a file was uploaded already."),
      }),
      response: { 200: pageSchema(datasetSchema) },
    },
  }, async (req) => {
    const rows = await listDatasets(ctx.db, req.tenant, { after: req.query.after, limit: req.query.limit, sha256: req.query.sha256 });
    return page(rows, req.query.limit, datasetView);
  });

  app.get("/v1/datasets/:id", {
    schema: {
      tags: ["datasets"],
      summary: "A dataset's summary: rows, shapes, task, classes, per-column statistics",
      params: idParams,
      response: { 200: datasetSchema, 404: errorSchema },
    },
  }, async (req) => datasetView(await service.getDataset(ctx.db, req.tenant, req.params.id)));

  app.delete("/v1/datasets/:id", {
    schema: {
      tags: ["datasets"],
      summary: "Delete a dataset and its rows",
      description:
        "Refused with 409 `dataset_in_use` while a queued or running job uses it. Jobs that have ended keep their metrics and " +
        "weights; their `dataset_id` becomes null.",
      params: idParams,
      response: { 204: z.null().describe("Deleted."), 404: errorSchema, 409: errorSchema },
    },
  }, async (req, reply) => {
    await service.deleteDataset(ctx.db, req.tenant, req.params.id);
    return reply.code(204).send(null);
  });
};

interface OpenedUpload {
  source: AsyncIterable<Uint8Array | string>;
  params: UploadParams;
  fileName?: string;
  contentType?: string;
}

async function openUpload(req: FastifyRequest, query: UploadParams, limit: number): Promise<OpenedUpload> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) {
    throw new AppError("payload_too_large", `The upload is ${declared} bytes; the limit is ${limit}.`, "file");
  }
  if (req.isMultipart()) {
    let part: Awaited<ReturnType<FastifyRequest["file"]>>;
    try {
      part = await req.file({ limits: { fileSize: limit, files: 1 } });
    } catch (err) {
      if (err instanceof AppError || (err as { statusCode?: number }).statusCode === 413) throw err;
      // busboy's own words ("Multipart: Boundary not found", "Malformed part header"...)
      throw new AppError("invalid_request", `The multipart body could not be read: ${(err as Error).message}`, "file");
    }
    if (!part) throw new AppError("missing_file", undefined, "file");
    if (part.fieldname !== "file") throw new AppError("missing_file", `The file must be in the field \`file\`, not \`${part.fieldname}\`.`, "file");
    // Fields sent before the file override the query string; they are validated like it.
    const fields: Record<string, string> = {};
    for (const [key, value] of Object.entries(part.fields)) {
      const field = Array.isArray(value) ? value[0] : value;
      if (field && field.type === "field" && typeof field.value === "string") fields[key] = field.value;
    }
    const parsed = uploadParams.safeParse({ ...query, ...fields });
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new AppError("invalid_request", `${issue.path.join(".")}: ${issue.message}`, issue.path.join(".") || null);
    }
    return { source: multipartErrors(part.file), params: parsed.data, fileName: cleanFileName(part.filename), contentType: part.mimetype };
  }
  const body = req.body as AsyncIterable<Uint8Array> | undefined;
  if (!body || typeof (body as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] !== "function") {
    throw new AppError("missing_file", undefined, "file");
  }
  return { source: body, params: query, contentType: req.headers["content-type"] };
}

/** The file part's bytes; busboy's own errors while reading them (a body cut off before its closing
 *  boundary, a malformed part) are the client's: a 400 naming the file. */
async function* multipartErrors(file: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  try {
    yield* file;
  } catch (err) {
    if (err instanceof AppError || (err as { statusCode?: number }).statusCode === 413) throw err;
    throw new AppError("invalid_request", `The multipart body could not be read: ${(err as Error).message}`, "file");
  }
}

/** A client's file name, fit to be a dataset's name: no control characters, at most 200 characters. */
function cleanFileName(name: string | undefined): string | undefined {
  const cleaned = (name ?? "").replace(/[\u0000-\u001f\u007f]/g, "").trim().slice(0, 200);
  return cleaned === "" ? undefined : cleaned;
}

function formatOf(contentType?: string, fileName?: string): "csv" | "jsonl" | undefined {
  const type = contentType?.split(";")[0].trim().toLowerCase();
  if (type && RAW_TYPES[type]) return RAW_TYPES[type];
  if (fileName?.toLowerCase().endsWith(".csv")) return "csv";
  if (/\.(jsonl|ndjson)$/i.test(fileName ?? "")) return "jsonl";
  return undefined;
}

/** Passes the stream through, counting bytes and stopping at the upload limit with a 413. */
function limitBytes(source: AsyncIterable<Uint8Array | string>, limit: number) {
  const counter = {
    bytes: 0,
    async *[Symbol.asyncIterator]() {
      for await (const chunk of source) {
        counter.bytes += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.byteLength;
        if (counter.bytes > limit) throw new AppError("payload_too_large", `The upload is larger than the limit of ${limit} bytes.`, "file");
        yield chunk;
      }
    },
  };
  return counter;
}
