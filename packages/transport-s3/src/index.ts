/**
 * `@slipstream/transport-s3` — a BlobStore over Amazon S3 and S3-compatible servers (AWS SDK
 * v3), for publishing slipstream artifacts with ArtifactTransport.
 *
 * @packageDocumentation
 */

export {
  DEFAULT_PART_SIZE_BYTES,
  DEFAULT_QUEUE_SIZE,
  FINISH_TIMEOUT_FACTOR,
  MAX_QUEUE_SIZE,
  MIN_PART_SIZE_BYTES,
  S3BlobStore,
  type S3BlobStoreOptions,
} from "./s3-blob-store.js";
