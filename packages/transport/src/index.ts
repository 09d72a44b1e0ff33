/**
 * `@slipstream/transport` — ArtifactTransport over any BlobStore: the tar wire format, the
 * pointer-swap publish, pruning, export rounds, remote bootstrap, and the BlobStore
 * conformance suite every transport package runs.
 *
 * @packageDocumentation
 */

export type {
  ArtifactTransportOptions,
  DownloadOptions,
  RemoteOptions,
  TransferOptions,
  UploadResult,
} from "./artifact-transport.js";
export {
  ArtifactTransport,
  DEFAULT_TRANSFER_TIMEOUT_MS,
  MAX_PUBLISH_ATTEMPTS,
} from "./artifact-transport.js";
export type {
  BlobBody,
  BlobInfo,
  BlobOpOptions,
  BlobPutOptions,
  BlobReadSmallOptions,
  BlobStore,
  BlobStoreCapabilities,
  ConditionalPutResult,
  PutCondition,
  SmallBlob,
} from "./blob-store.js";
export {
  assertBlobKey,
  blobKeyProblem,
  conditionalWritesUnsupported,
  objectTooLarge,
} from "./blob-store.js";
export type { CatalogEntry, CatalogPayload, DescribeArtifactsOptions } from "./catalog.js";
export { describeArtifacts } from "./catalog.js";
export { DEFAULT_CHUNK_BYTES } from "./chunks.js";
export type { BlobStoreConformanceOptions, BlobStoreHarness } from "./conformance.js";
export { blobStoreConformance } from "./conformance.js";
export type { KeyWrapOptions, KeyWrapper } from "./encryption.js";
export { GCM_TAG_BYTES, symmetricKeyWrapper } from "./encryption.js";
export type {
  ExportRoundOptions,
  ExportRoundResult,
  RoundExporter,
  RoundLease,
  RoundLeaseGuard,
} from "./export-round.js";
export { defaultExporter, runExportRound } from "./export-round.js";
export type { TarEntrySpec, TestArtifactOptions } from "./fixtures.js";
export { buildTar, makeTestArtifact } from "./fixtures.js";
export type { ImportRemoteHints, ImportRemoteOptions, ImportReplaceOptions } from "./import-remote.js";
export { importRemote } from "./import-remote.js";
export type { FileSpan } from "./layout.js";
export { payloadLayout, storedFileSize, tarHeaderBytes } from "./layout.js";
export { PAYLOADS_SUFFIX, POINTER_SUFFIX, parsePayloadName, payloadName } from "./naming.js";
export type { ParallelRangesOptions } from "./ranged-read.js";
export { chainBodies, parallelRanges } from "./ranged-read.js";
export type { ChunkedDownloadStats } from "./resumable-download.js";
export {
  DEFAULT_CHUNK_RETRIES,
  DEFAULT_DOWNLOAD_CONCURRENCY,
  DEFAULT_RESUME_MAX_AGE_MS,
  RESUME_PREFIX,
} from "./resumable-download.js";
export type { PackOptions, UnpackOptions } from "./tar.js";
export { packArtifact, unpackArtifact } from "./tar.js";
export type { TrustedArtifactSuiteOptions } from "./trust-suite.js";
export { trustedArtifactSuite } from "./trust-suite.js";
export type { BlobOperation, FaultHook } from "./wrappers.js";
export { FaultInjectingBlobStore, stallUntilAborted, withoutConditionalWrites } from "./wrappers.js";
