-- API keys and tenants. Rows stored before tenants existed belong to the tenant "default": an admin
-- can create a key for it (POST /v1/keys {"tenant":"default"}) to reach them. A dataset can now be
-- deleted once no unfinished job uses it: the jobs that used it keep their results, with a null
-- dataset_id.
-- DropForeignKey
ALTER TABLE "jobs" DROP CONSTRAINT "jobs_dataset_id_fkey";

-- DropForeignKey
ALTER TABLE "jobs" DROP CONSTRAINT "jobs_validation_dataset_id_fkey";

-- DropIndex
DROP INDEX "datasets_created_at_idx";

-- DropIndex
DROP INDEX "jobs_created_at_idx";

-- DropIndex
DROP INDEX "jobs_idempotency_key_key";

-- AlterTable
ALTER TABLE "datasets" ADD COLUMN     "tenant" TEXT NOT NULL DEFAULT 'default';
ALTER TABLE "datasets" ALTER COLUMN "tenant" DROP DEFAULT;

-- AlterTable
ALTER TABLE "jobs" ADD COLUMN     "classes" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "tenant" TEXT NOT NULL DEFAULT 'default',
ALTER COLUMN "dataset_id" DROP NOT NULL;
ALTER TABLE "jobs" ALTER COLUMN "tenant" DROP DEFAULT;

-- CreateTable
CREATE TABLE "api_keys" (
    "id" UUID NOT NULL,
    "tenant" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revoked_at" TIMESTAMP(3),

    CONSTRAINT "api_keys_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "api_keys_hash_key" ON "api_keys"("hash");

-- CreateIndex
CREATE INDEX "api_keys_tenant_idx" ON "api_keys"("tenant");

-- CreateIndex
CREATE INDEX "datasets_tenant_created_at_idx" ON "datasets"("tenant", "created_at");

-- CreateIndex
CREATE INDEX "datasets_tenant_sha256_idx" ON "datasets"("tenant", "sha256");

-- CreateIndex
CREATE INDEX "jobs_tenant_created_at_idx" ON "jobs"("tenant", "created_at");

-- CreateIndex
CREATE INDEX "jobs_tenant_status_idx" ON "jobs"("tenant", "status");

-- CreateIndex
CREATE UNIQUE INDEX "jobs_tenant_idempotency_key_key" ON "jobs"("tenant", "idempotency_key");

-- AddForeignKey
ALTER TABLE "jobs" ADD CONSTRAINT "jobs_dataset_id_fkey" FOREIGN KEY ("dataset_id") REFERENCES "datasets"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "jobs" ADD CONSTRAINT "jobs_validation_dataset_id_fkey" FOREIGN KEY ("validation_dataset_id") REFERENCES "datasets"("id") ON DELETE SET NULL ON UPDATE CASCADE;
