/**
 * `@slipstream/snapshot-leveldb` — a durable SnapshotStore on LevelDB.
 *
 * @packageDocumentation
 */

export { ARTIFACT_LAYOUT, ARTIFACT_VERSION, READABLE_ARTIFACT_VERSIONS } from "./artifact-version.js";
export type { LevelTuning } from "./fold-db.js";
export { BACKEND_ID, BACKEND_VERSION, FORMAT_GENERATION, prefixUpperBound } from "./format.js";
export type { ValueRecord } from "./record.js";
export { decodeValueRecord, encodeValueRecord } from "./record.js";
export type { LevelImportOptions, LevelSnapshotStoreOptions, LevelStoreStats } from "./store.js";
export { LevelSnapshotStore } from "./store.js";
