/**
 * `@slipstream/transport-azure` — a slipstream BlobStore over Azure Blob Storage (block
 * blobs, ETag conditional writes), for publishing artifacts with ArtifactTransport.
 *
 * @packageDocumentation
 */

export type { AzureBlobStoreOptions } from "./azure-blob-store.js";
export { AzureBlobStore, DEFAULT_BLOCK_SIZE_BYTES, DEFAULT_CONCURRENCY } from "./azure-blob-store.js";
