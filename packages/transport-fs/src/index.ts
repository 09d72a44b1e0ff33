/**
 * `@slipstream/transport-fs` — a BlobStore over a directory (local or a shared filesystem),
 * with real conditional writes.
 *
 * @packageDocumentation
 */

export type { FsBlobStoreOptions } from "./fs-blob-store.js";
export { FsBlobStore, RESERVED_PREFIX } from "./fs-blob-store.js";
