// Used by `prisma generate` (and by `prisma migrate deploy` where Prisma's engine binary can be
// downloaded). The app itself reads DATABASE_URL through src/config.ts.
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/trainhub" },
});
