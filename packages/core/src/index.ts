export { ErrorCodes, SlipstreamError, artifactInvalid, invalidArgument } from "./errors.js";
export type { ErrorCode } from "./errors.js";
export { VersionToken, VERSION_TOKEN_CAPACITY, MAX_REVISION } from "./version.js";
export { WatchCursor } from "./cursor.js";
export { toHex, parseHex } from "./hex.js";
export { silentLogger, fromPino } from "./logger.js";
export type { Logger } from "./logger.js";
export { updateKey, updateVersion, scopePrefixes, scopeContains } from "./types.js";
export type {
  KvEntry,
  KvUpdate,
  WatchScope,
  OpOptions,
  KvReader,
  KvWriter,
  WatchOptions,
  KvWatcher,
  KvCapabilities,
  KvStore,
  ArtifactFile,
  ArtifactEncryption,
  ArtifactSignature,
  ExportManifest,
  Progress,
  ProgressFn,
  ExportOptions,
  SnapshotStore,
  SnapshotImporter,
} from "./types.js";
export { DEFAULT_TIMEOUT_MS, withTimeout, runUnder, sleep, throwIfAborted, abortedError, collect } from "./async.js";
export {
  MANIFEST_FILE,
  PAYLOAD_DIR,
  ARTIFACT_SCHEMA_VERSION,
  MAX_MANIFEST_BYTES,
  CHUNK_SIZE_LIMITS,
  chunkCount,
  encodeManifest,
  parseManifest,
  payloadPathProblem,
  sortFiles,
} from "./manifest.js";
export {
  TEMP_PREFIX,
  hashFile,
  checkDestAvailable,
  renameIntoPlace,
  createStageBeside,
  listPayload,
  sealArtifact,
  exportArtifact,
  readManifest,
  verifyAndStageImport,
  removeIfEmptyDir,
  cursorMismatch,
  expectBackend,
} from "./artifact.js";
export type { SealOptions, ExportArtifactOptions, ImportTransfer, StageImportOptions } from "./artifact.js";
export { fsyncPath, fsyncParent } from "./fsync.js";
export { mkdtempOwned, sweepAbandonedTemps } from "./owned-temp.js";
export {
  resumeWindowOk,
  resumeStartSequence,
  liveGapSuspect,
  liveGapOk,
  cursorRank,
  pointerPublishAllowed,
  payloadPrunable,
} from "./protocol.js";
export type { PrunableInput } from "./protocol.js";
export { verifyArtifact } from "./verify.js";
export type {
  ArtifactProblem,
  ArtifactProblemKind,
  ArtifactVerification,
  VerifiedFile,
  VerifyArtifactOptions,
} from "./verify.js";
export { retentionHorizon } from "./horizon.js";
export type { HorizonState, RetentionHorizon, RetentionHorizonOptions, RetentionState } from "./horizon.js";
export {
  SIGNING_CONTEXT,
  assertManifestTrusted,
  checkManifestSignature,
  manifestSigner,
  manifestSigningBytes,
  publicKeyId,
  toPublicKey,
  validateTrustPolicy,
} from "./trust.js";
export type {
  ManifestSigner,
  PrivateKeyInput,
  PublicKeyInput,
  SignatureCheck,
  TrustPolicy,
  TrustedKey,
} from "./trust.js";
