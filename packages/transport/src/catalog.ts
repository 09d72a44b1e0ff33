/**
 * A read-only catalog of what a BlobStore holds under a transport prefix: every published
 * pointer, the payloads kept for it, which one the pointer names, and which ones `prune`
 * would remove now. For operator tools; it writes and deletes nothing.
 */
import {
  checkManifestSignature,
  cursorRank,
  DEFAULT_TIMEOUT_MS,
  type ExportManifest,
  MAX_MANIFEST_BYTES,
  parseManifest,
  payloadPrunable,
  type SignatureCheck,
  SlipstreamError,
  type TrustPolicy,
  withTimeout,
} from "@slipstream/core";
import { assertBlobKey, type BlobInfo, type BlobStore } from "./blob-store.js";
import { joinKey, PAYLOADS_SUFFIX, POINTER_SUFFIX, parsePayloadName, payloadName } from "./naming.js";

/** Options of {@link describeArtifacts}. */
export interface DescribeArtifactsOptions {
  /** The transport prefix (as given to `ArtifactTransport`). @defaultValue `""` */
  prefix?: string;
  /** Only this artifact key. @defaultValue every key found under the prefix */
  key?: string;
  /** The grace period `prune` would be called with, for {@link CatalogPayload.prunable}. @defaultValue 0 */
  graceMs?: number;
  /** Bound of each remote call. @defaultValue 30 000 */
  timeoutMs?: number;
  /** Trusted keys to judge each pointer's signature with ({@link CatalogEntry.pointer}`.signature`). @defaultValue none: signed pointers are `unchecked` */
  trust?: TrustPolicy;
  /** The clock for the grace period. @defaultValue `Date.now()` */
  nowMs?: number;
  signal?: AbortSignal;
}

/** One payload object of an artifact key. */
export interface CatalogPayload {
  /** The object key. */
  readonly objectKey: string;
  readonly size: number;
  readonly lastModified: Date;
  /** The cursor rank encoded in the name; undefined for a name this transport did not write. */
  readonly rank: bigint | undefined;
  /** True when the pointer names this payload. */
  readonly current: boolean;
  /** True when `prune(key, graceMs)` would delete it now. */
  readonly prunable: boolean;
}

/** One artifact key: its pointer and payloads. */
export interface CatalogEntry {
  /** The artifact key (what `upload`/`download` take). */
  readonly key: string;
  /** The pointer object key. */
  readonly pointerKey: string;
  /** The pointer object, when present. */
  readonly pointer:
    | {
        readonly size: number;
        readonly lastModified: Date;
        /** The parsed manifest; undefined when the pointer is unreadable. */
        readonly manifest: ExportManifest | undefined;
        /** Who exported the published artifact (the manifest's `exporter`); undefined when it records none or is unreadable. */
        readonly exporter: string | undefined;
        /** Why the pointer is unreadable. */
        readonly problem: string | undefined;
        /** The payload object the pointer names (whether or not it exists). */
        readonly payloadKey: string | undefined;
        /** The signature verdict under `opts.trust` (never throws); undefined when unreadable. */
        readonly signature?: SignatureCheck | undefined;
      }
    | undefined;
  /** Every payload object under the key, oldest rank first. */
  readonly payloads: readonly CatalogPayload[];
  /** The sum of the declared payload file sizes of the pointer's manifest. */
  readonly declaredBytes: number | undefined;
  /** True when the pointer names a payload that is not in the store. */
  readonly danglingPointer: boolean;
}

async function listAll(
  store: BlobStore,
  prefix: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<BlobInfo[]> {
  return withTimeout(`object store: list ${prefix || "(root)"}`, timeoutMs * 8, signal, async (s) => {
    const out: BlobInfo[] = [];
    for await (const item of store.list(prefix, { signal: s })) out.push(item);
    return out;
  }).catch((err: unknown) => {
    throw SlipstreamError.wrap(err, "BACKEND", `object store: list ${prefix || "(root)"}`);
  });
}

/**
 * Lists the artifacts under `opts.prefix` of `store`: each key's pointer (parsed manifest,
 * or why it is unreadable), its payloads with the one the pointer names, and the payloads
 * `ArtifactTransport.prune(key, graceMs)` would delete now. Reads only: one listing plus one
 * small read per pointer. Keys whose payloads exist without a pointer are listed too.
 *
 * @throws SlipstreamError `BACKEND` or `TIMEOUT` when the store fails; `INVALID_ARGUMENT` for a bad prefix or key.
 */
export async function describeArtifacts(
  store: BlobStore,
  opts: DescribeArtifactsOptions = {},
): Promise<CatalogEntry[]> {
  const prefix = opts.prefix ?? "";
  if (prefix !== "") assertBlobKey(prefix, "prefix");
  if (opts.key !== undefined) assertBlobKey(opts.key);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const graceMs = opts.graceMs ?? 0;
  const nowMs = opts.nowMs ?? Date.now();
  const root = opts.key !== undefined ? joinKey(prefix, opts.key) : prefix === "" ? "" : `${prefix}/`;
  const listed = await listAll(store, root, timeoutMs, opts.signal);

  const keyStart = prefix === "" ? 0 : prefix.length + 1;
  const pointers = new Map<string, BlobInfo>();
  const payloads = new Map<string, BlobInfo[]>();
  for (const item of listed) {
    const rel = item.key.slice(keyStart);
    if (rel.endsWith(POINTER_SUFFIX)) {
      pointers.set(rel.slice(0, -POINTER_SUFFIX.length), item);
      continue;
    }
    const at = rel.lastIndexOf(PAYLOADS_SUFFIX);
    if (at > 0 && !rel.slice(at + PAYLOADS_SUFFIX.length).includes("/")) {
      const key = rel.slice(0, at);
      const list = payloads.get(key) ?? [];
      list.push(item);
      payloads.set(key, list);
    }
  }
  const keys = [...new Set([...pointers.keys(), ...payloads.keys()])]
    .filter((k) => opts.key === undefined || k === opts.key)
    .sort();

  const out: CatalogEntry[] = [];
  for (const key of keys) {
    const pointerKey = `${joinKey(prefix, key)}${POINTER_SUFFIX}`;
    const payloadPrefix = `${joinKey(prefix, key)}${PAYLOADS_SUFFIX}`;
    const info = pointers.get(key);
    let pointer: CatalogEntry["pointer"];
    if (info) {
      const got = await withTimeout(`object store: read ${pointerKey}`, timeoutMs, opts.signal, (s) =>
        store.readSmall(pointerKey, { maxBytes: MAX_MANIFEST_BYTES, signal: s }),
      ).catch((err: unknown) => {
        if (SlipstreamError.is(err, "ARTIFACT_INVALID")) return err;
        throw SlipstreamError.wrap(err, "BACKEND", `object store: read ${pointerKey}`);
      });
      let manifest: ExportManifest | undefined;
      let problem: string | undefined;
      let payloadKey: string | undefined;
      let signature: SignatureCheck | undefined;
      if (got instanceof Error) problem = got.message;
      else if (got === undefined) problem = "the pointer vanished while it was listed";
      else {
        try {
          manifest = parseManifest(got.bytes);
          payloadKey = `${payloadPrefix}${payloadName(manifest, got.bytes)}`;
          signature = checkManifestSignature(got.bytes, manifest, opts.trust);
        } catch (err) {
          problem = (err as Error).message;
        }
      }
      pointer = {
        size: info.size,
        lastModified: info.lastModified,
        manifest,
        exporter: manifest?.exporter,
        problem,
        payloadKey,
        signature,
      };
    }
    const pointerRank = pointer?.manifest ? cursorRank(pointer.manifest.cursor) : undefined;
    const items = (payloads.get(key) ?? []).map((p): CatalogPayload => {
      const rank = parsePayloadName(p.key.slice(payloadPrefix.length))?.rank;
      const current = p.key === pointer?.payloadKey;
      // Exactly prune's rule: nothing without a readable pointer.
      const prunable =
        pointerRank !== undefined &&
        payloadPrunable({
          payloadRank: rank,
          pointerRank,
          isPointerTarget: current,
          lastModifiedMs: p.lastModified.getTime(),
          nowMs,
          graceMs,
        });
      return { objectKey: p.key, size: p.size, lastModified: p.lastModified, rank, current, prunable };
    });
    items.sort((a, b) =>
      (a.rank ?? -1n) < (b.rank ?? -1n)
        ? -1
        : (a.rank ?? -1n) > (b.rank ?? -1n)
          ? 1
          : a.objectKey < b.objectKey
            ? -1
            : 1,
    );
    const declaredBytes = pointer?.manifest?.files.reduce((n, f) => n + f.size, 0);
    out.push({
      key,
      pointerKey,
      pointer,
      payloads: items,
      declaredBytes,
      danglingPointer: pointer?.payloadKey !== undefined && !items.some((p) => p.current),
    });
  }
  return out;
}
