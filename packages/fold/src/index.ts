export {
  MemorySnapshotStore,
  MemoryBacking,
  memoryStoreFactory,
  MEMORY_BACKEND,
  MEMORY_BACKEND_VERSION,
  MEMORY_PAYLOAD_FILE,
} from "./memory-store.js";
export type { MemorySnapshotStoreOptions, MemoryStoreFactory } from "./memory-store.js";
export { snapshotStoreSuite, fixtureLog, foldLog, dumpStore } from "./conformance.js";
export type { SnapshotStoreSuiteOptions, SnapshotStoreCapabilities } from "./conformance.js";
export { watchApplied } from "./watch-applied.js";
export type {
  AppliedWatch,
  AppliedWatchStats,
  BatchOptions,
  RetryOptions,
  WatchAppliedOptions,
} from "./watch-applied.js";
