/*
  Warnings:

  - The `state` column on the `checkpoints` table would be dropped and recreated. This will lead to data loss if there is data in the column.
  - A unique constraint covering the columns `[job_id,key]` on the table `job_events` will be added. If there are existing duplicate values, this will fail.
  - A unique constraint covering the columns `[idempotency_key]` on the table `jobs` will be added. If there are existing duplicate values, this will fail.

*/
-- AlterTable
ALTER TABLE "checkpoints" DROP COLUMN "state",
ADD COLUMN     "state" BYTEA;

-- AlterTable
ALTER TABLE "datasets" ADD COLUMN     "updated_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;

-- AlterTable
ALTER TABLE "job_events" ADD COLUMN     "key" TEXT;

-- AlterTable
ALTER TABLE "jobs" ADD COLUMN     "cancel_requested_at" TIMESTAMP(3),
ADD COLUMN     "heartbeat_at" TIMESTAMP(3),
ADD COLUMN     "idempotency_key" TEXT,
ADD COLUMN     "request_hash" TEXT,
ADD COLUMN     "worker_id" TEXT;

-- CreateIndex
CREATE INDEX "datasets_status_updated_at_idx" ON "datasets"("status", "updated_at");

-- CreateIndex
CREATE UNIQUE INDEX "job_events_job_id_key_key" ON "job_events"("job_id", "key");

-- CreateIndex
CREATE UNIQUE INDEX "jobs_idempotency_key_key" ON "jobs"("idempotency_key");
