// The dashboard's server side: the loss curves as an SVG image (for READMEs, chat, terminals), and
// the static page itself (web/) with the chart library served from our own origin.
import { fileURLToPath } from "node:url";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { FastifyPluginAsync, FastifyReply } from "fastify";
import fastifyStatic from "@fastify/static";
import { z } from "zod";
import { renderCurvesSvg } from "../../charts/curves-svg.js";
import * as service from "../../services/jobs.js";
import { listMetrics } from "../../db/jobs.js";
import type { AppContext } from "../context.js";
import { errorSchema, idParams, metricView } from "../schemas.js";

const WEB_ROOT = fileURLToPath(new URL("../../../web/", import.meta.url));
const UPLOT_ROOT = fileURLToPath(new URL("../../../node_modules/uplot/dist/", import.meta.url));

/**
 * Everything the page loads comes from this origin; the header makes the browser refuse anything
 * else too (scripts, styles, fetches, images).
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'", // uPlot sets element styles
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join("; ");

const booleanString = z
  .enum(["true", "false", "1", "0"])
  .transform((v) => v === "true" || v === "1");

export const dashboardRoutes = (ctx: AppContext): FastifyPluginAsyncZod => async (app) => {
  app.get("/v1/jobs/:id/curves.svg", {
    schema: {
      tags: ["jobs"],
      summary: "The training and validation loss curves as an SVG image",
      description:
        "A standalone SVG document (`image/svg+xml`) drawn by the server: training loss and validation loss per epoch (one " +
        "path each; validation only over the epochs that validated), axes with ticks, a legend and the best epoch marked. " +
        "Values that cannot be drawn (NaN, infinite, or not positive on a log scale) are left out and break the curve.",
      params: idParams,
      querystring: z.object({
        log: booleanString.default(false).describe("A logarithmic loss axis."),
        width: z.coerce.number().int().min(200).max(4000).default(800).describe("Image width in pixels."),
        height: z.coerce.number().int().min(150).max(3000).default(450).describe("Image height in pixels."),
      }),
      response: {
        200: z.string().describe("image/svg+xml"),
        404: errorSchema,
      },
    },
  }, async (req, reply) => {
    const job = await service.getJob(ctx.db, req.tenant, req.params.id);
    const metrics = (await listMetrics(ctx.db, job.id)).map(metricView);
    const epochs = (job.config as { epochs?: unknown }).epochs;
    const svg = renderCurvesSvg(metrics, {
      log: req.query.log,
      width: req.query.width,
      height: req.query.height,
      title: `Job ${job.id} · ${job.status} · epoch ${job.epoch}${typeof epochs === "number" ? `/${epochs}` : ""}`,
      bestEpoch: job.bestEpoch,
      totalEpochs: typeof epochs === "number" ? epochs : undefined,
    });
    return reply
      .header("content-type", "image/svg+xml; charset=utf-8")
      .header("cache-control", "no-store")
      .header("x-content-type-options", "nosniff")
      .send(svg);
  });
};

/** The page (web/ at `/`) and uPlot from node_modules at `/assets/uplot/`, both hidden from the API document. */
export const dashboardStatic = (): FastifyPluginAsync => async (app) => {
  const setHeaders = (reply: FastifyReply) => {
    void reply.header("content-security-policy", CONTENT_SECURITY_POLICY);
    void reply.header("x-content-type-options", "nosniff");
    void reply.header("cache-control", "no-cache");
  };
  await app.register(fastifyStatic, {
    root: WEB_ROOT,
    prefix: "/",
    wildcard: false,
    index: ["index.html"],
    schemaHide: true,
    setHeaders,
  });
  await app.register(fastifyStatic, {
    root: UPLOT_ROOT,
    prefix: "/assets/uplot/",
    wildcard: false,
    decorateReply: false,
    schemaHide: true,
    allowedPath: (path) => /^\/?uPlot\.(esm\.js|min\.css)$/.test(path),
    setHeaders,
  });
};
