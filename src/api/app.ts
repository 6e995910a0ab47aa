// The app factory: external plugins first, then error handling, then our routes. server.ts only
// starts and stops what this builds; tests build it too and call app.inject.
import Fastify, { type FastifyInstance } from "fastify";
import multipart from "@fastify/multipart";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import type { AppContext } from "./context.js";
import { registerErrorHandling } from "./error-handler.js";
import { registerObservability, requestIdOptions } from "./observability.js";
import { registerRateLimit } from "./rate-limit.js";
import { healthRoutes } from "./routes/health.js";
import { datasetRoutes } from "./routes/datasets.js";
import { jobRoutes } from "./routes/jobs.js";
import { streamRoutes } from "./routes/stream.js";
import { eventRoutes } from "./routes/events.js";
import { keyRoutes } from "./routes/keys.js";
import { checkpointRoutes } from "./routes/checkpoints.js";
import { dashboardRoutes, dashboardStatic } from "./routes/dashboard.js";
import { registerAuth, securitySchemes } from "./auth.js";
import { trackRoutes } from "./route-list.js";

export async function buildApp(ctx: AppContext): Promise<FastifyInstance> {
  const app = Fastify({
    logger: ctx.config.logLevel === "silent" ? false : { level: ctx.config.logLevel },
    bodyLimit: 1024 * 1024,
    ...requestIdOptions,
  }).withTypeProvider<ZodTypeProvider>();
  trackRoutes(app);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  await app.register(multipart, { limits: { fileSize: ctx.config.uploadLimitBytes, files: 1, fields: 20 } });
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Training service API",
        description: "Upload a dataset, submit a training job, follow its losses epoch by epoch, download the weights.",
        version: "1",
      },
      components: { securitySchemes },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });
  registerErrorHandling(app);
  registerObservability(app, ctx);
  await registerRateLimit(app, ctx);
  registerAuth(app, ctx);

  await app.register(healthRoutes(ctx));
  await app.register(datasetRoutes(ctx));
  await app.register(jobRoutes(ctx));
  await app.register(streamRoutes(ctx));
  await app.register(eventRoutes(ctx));
  await app.register(keyRoutes(ctx));
  await app.register(checkpointRoutes(ctx));
  await app.register(dashboardRoutes(ctx));
  await app.register(dashboardStatic());
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  return app;
}
