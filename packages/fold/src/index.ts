export type { SnapshotStoreCapabilities, SnapshotStoreSuiteOptions } from "./conformance.js";
export { dumpStore, fixtureLog, foldLog, snapshotStoreSuite } from "./conformance.js";
export type { MemorySnapshotStoreOptions, MemoryStoreFactory } from "./memory-store.js";
export {
  MEMORY_BACKEND,
  MEMORY_BACKEND_VERSION,
  MEMORY_PAYLOAD_FILE,
  MemoryBacking,
  MemorySnapshotStore,
  memoryStoreFactory,
} from "./memory-store.js";
export type { AppliedWatchMetrics, AppliedWatchMetricsOptions } from "./metrics.js";
export { appliedWatchMetrics } from "./metrics.js";
export type {
  AppliedWatch,
  AppliedWatchStats,
  BatchOptions,
  MassDeleteGuard,
  MassDeleteInfo,
  RetryOptions,
  WatchAppliedOptions,
} from "./watch-applied.js";
export { DEFAULT_EXPORT_QUIESCE_MS, watchApplied } from "./watch-applied.js";
