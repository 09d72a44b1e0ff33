/**
 * `@slipstream/transport` — ArtifactTransport over any BlobStore: the tar wire format, the
 * pointer-swap publish, pruning, export rounds, remote bootstrap, and the BlobStore
 * conformance suite every transport package runs.
 *
 * @packageDocumentation
 */
export {
  assertBlobKey,
  blobKeyProblem,
  conditionalWritesUnsupported,
  objectTooLarge,
} from "./blob-store.js";
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
  ArtifactTransport,
  DEFAULT_TRANSFER_TIMEOUT_MS,
  MAX_PUBLISH_ATTEMPTS,
} from "./artifact-transport.js";
export type { ArtifactTransportOptions, RemoteOptions, TransferOptions, UploadResult } from "./artifact-transport.js";
export { POINTER_SUFFIX, PAYLOADS_SUFFIX, parsePayloadName, payloadName } from "./naming.js";
export { packArtifact, unpackArtifact } from "./tar.js";
export type { PackOptions, UnpackOptions } from "./tar.js";
export { runExportRound } from "./export-round.js";
export type {
  ExportRoundOptions,
  ExportRoundResult,
  RoundExporter,
  RoundLease,
  RoundLeaseGuard,
} from "./export-round.js";
export { importRemote } from "./import-remote.js";
export type { ImportRemoteOptions } from "./import-remote.js";
export { blobStoreConformance } from "./conformance.js";
export type { BlobStoreConformanceOptions, BlobStoreHarness } from "./conformance.js";
export { makeTestArtifact, buildTar } from "./fixtures.js";
export type { TestArtifactOptions, TarEntrySpec } from "./fixtures.js";
export { FaultInjectingBlobStore, stallUntilAborted, withoutConditionalWrites } from "./wrappers.js";
export type { BlobOperation, FaultHook } from "./wrappers.js";
