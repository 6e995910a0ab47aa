// Datasets: streaming ingestion of uploaded files (CSV, JSON Lines) into encoded chunks, and the
// binary tensor encoding those chunks are stored in.
export {
  ingestDataset,
  DEFAULT_CHUNK_ROWS,
  type IngestOptions,
  type DatasetSummary,
  type EncodedChunk,
  type ColumnStats,
  type Task,
} from "./ingest.js";
export { MAX_CLASSES } from "./targets.js";
export { parseDecimal } from "./numbers.js";
export {
  float32ToBytes,
  bytesToFloat32,
  encodeFloat32LittleEndian,
  decodeFloat32LittleEndian,
  assembleRows,
  HOST_IS_LITTLE_ENDIAN,
  type StoredChunk,
} from "./tensor-codec.js";
