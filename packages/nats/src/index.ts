/**
 * `@slipstream/nats` — the NATS JetStream KV adapter of slipstream: connection, bucket
 * get-or-create, and core's KvReader / KvWriter / KvWatcher over nats.js v3.
 *
 * @packageDocumentation
 */

export type { BucketStatus, StoreConfig } from "./bucket.js";
export { DEFAULT_MAX_BYTES, MAX_HISTORY, NatsKvStore } from "./bucket.js";
export type { ConnectOptions, FromClientOptions, NatsCapabilities } from "./connect.js";
export { connect, DEFAULT_WATCH_STALL_MS, NatsConnection } from "./connect.js";
export type { AuthKind } from "./credentials.js";
export { MAX_KEY_LENGTH, validateBucketName, validateKey, validatePrefix } from "./keys.js";
export { NatsKvReader } from "./reader.js";
export { NatsKvWatcher } from "./watcher.js";
export { NatsKvWriter } from "./writer.js";
