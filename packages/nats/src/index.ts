/**
 * `@slipstream/nats` — the NATS JetStream KV adapter of slipstream: connection, bucket
 * get-or-create, and core's KvReader / KvWriter / KvWatcher over nats.js v3.
 *
 * @packageDocumentation
 */
export { connect, NatsConnection, DEFAULT_WATCH_STALL_MS } from "./connect.js";
export type { ConnectOptions, FromClientOptions, NatsCapabilities } from "./connect.js";
export { NatsKvStore, DEFAULT_MAX_BYTES, MAX_HISTORY } from "./bucket.js";
export type { StoreConfig, BucketStatus } from "./bucket.js";
export { NatsKvReader } from "./reader.js";
export { NatsKvWriter } from "./writer.js";
export { NatsKvWatcher } from "./watcher.js";
export type { AuthKind } from "./credentials.js";
export { validateKey, validatePrefix, validateBucketName, MAX_KEY_LENGTH } from "./keys.js";
