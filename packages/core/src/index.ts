export type { ExportArtifactOptions, ImportTransfer, SealOptions, StageImportOptions } from "./artifact.js";
export {
  checkDestAvailable,
  createStageBeside,
  cursorMismatch,
  expectBackend,
  exportArtifact,
  hashFile,
  listPayload,
  readManifest,
  removeIfEmptyDir,
  renameIntoPlace,
  sealArtifact,
  TEMP_PREFIX,
  verifyAndStageImport,
} from "./artifact.js";
export {
  abortedError,
  collect,
  DEFAULT_TIMEOUT_MS,
  forEachConcurrent,
  runUnder,
  sleep,
  throwIfAborted,
  withTimeout,
} from "./async.js";
export { CHUNK_BYTES, ChunkPool, readChunks } from "./chunks.js";
export { WatchCursor } from "./cursor.js";
export type { ErrorCode } from "./errors.js";
export {
  ARTIFACT_REFUSAL_CODES,
  artifactInvalid,
  ErrorCodes,
  invalidArgument,
  isArtifactRefusal,
  SlipstreamError,
} from "./errors.js";
export type { FoldScope } from "./fold-scope.js";
export {
  assertScopeCovers,
  coveringPrefixes,
  describeScope,
  foldScopeOf,
  inFoldScope,
  MAX_SCOPE_PREFIX_LENGTH,
  MAX_SCOPE_PREFIXES,
  normalizeScope,
  resolveExportScope,
  resolveImportScope,
  sameScope,
  scopeCovers,
  scopePrefixProblem,
} from "./fold-scope.js";
export { fsyncParent, fsyncPath } from "./fsync.js";
export { parseHex, toHex } from "./hex.js";
export type { HorizonState, RetentionHorizon, RetentionHorizonOptions, RetentionState } from "./horizon.js";
export { retentionHorizon } from "./horizon.js";
export type { Logger } from "./logger.js";
export { fromPino, silentLogger } from "./logger.js";
export {
  ARTIFACT_SCHEMA_VERSION,
  CHUNK_SIZE_LIMITS,
  chunkCount,
  encodeManifest,
  exporterProblem,
  MANIFEST_FILE,
  MAX_EXPORTER_CHARS,
  MAX_MANIFEST_BYTES,
  PAYLOAD_DIR,
  parseManifest,
  payloadPathProblem,
  sortFiles,
} from "./manifest.js";
export type { MassDeleteGuard, MassDeleteInfo, ResolvedMassDeleteGuard } from "./mass-delete.js";
export { askMassDelete, massDeleteTrips, resolveMassDeleteGuard } from "./mass-delete.js";
export { mkdtempOwned, processAlive, sweepAbandonedTemps } from "./owned-temp.js";
export type { PrunableInput } from "./protocol.js";
export {
  cursorRank,
  liveGapOk,
  liveGapSuspect,
  payloadPrunable,
  pointerPublishAllowed,
  resumeStartSequence,
  resumeWindowOk,
} from "./protocol.js";
export type {
  ManifestSigner,
  PrivateKeyInput,
  PublicKeyInput,
  SignatureCheck,
  TrustedKey,
  TrustPolicy,
} from "./trust.js";
export {
  assertManifestTrusted,
  checkManifestSignature,
  manifestSigner,
  manifestSigningBytes,
  publicKeyId,
  SIGNING_CONTEXT,
  toPublicKey,
  validateTrustPolicy,
} from "./trust.js";
export type {
  ArtifactEncryption,
  ArtifactFile,
  ArtifactSignature,
  ExportManifest,
  ExportOptions,
  KvCapabilities,
  KvEntry,
  KvReader,
  KvStore,
  KvUpdate,
  KvWatcher,
  KvWriter,
  OpOptions,
  Progress,
  ProgressFn,
  QuiesceOptions,
  SnapshotImporter,
  SnapshotStore,
  WatchOptions,
  WatchScope,
} from "./types.js";
export { scopeContains, scopePrefixes, updateKey, updateVersion } from "./types.js";
export type {
  ArtifactProblem,
  ArtifactProblemKind,
  ArtifactVerification,
  VerifiedFile,
  VerifyArtifactOptions,
} from "./verify.js";
export { verifyArtifact } from "./verify.js";
export { MAX_REVISION, VERSION_TOKEN_CAPACITY, VersionToken } from "./version.js";
