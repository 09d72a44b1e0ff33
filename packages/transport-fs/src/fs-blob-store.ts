/**
 * A BlobStore over a directory: one file per object. Puts go through a temp file, fsync and
 * rename (visible only when complete); conditional writes are real — create-only links the
 * finished temp file into place (atomic, fails if the name exists) and replace-if-version
 * compares content hashes under a per-object lock file, with stale-lock recovery — so
 * several processes on one host (or on a shared filesystem with POSIX link/rename
 * semantics) can publish through the same root safely.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import {
  type FileHandle,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  rename,
  stat,
  unlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join, resolve, sep } from "node:path";
import {
  abortedError,
  ChunkPool,
  fsyncPath,
  readChunks,
  SlipstreamError,
  sleep,
  throwIfAborted,
} from "@slipstream/core";
import {
  assertBlobKey,
  type BlobBody,
  type BlobInfo,
  type BlobOpOptions,
  type BlobPutOptions,
  type BlobReadSmallOptions,
  type BlobStore,
  type BlobStoreCapabilities,
  type ConditionalPutResult,
  objectTooLarge,
  type PutCondition,
  type SmallBlob,
} from "@slipstream/transport";

/** Names starting with this are the store's own temp and lock files; keys may not use it. */
export const RESERVED_PREFIX = ".slipstream-fs-";
const TMP_PREFIX = `${RESERVED_PREFIX}tmp-`;
const LOCK_PREFIX = `${RESERVED_PREFIX}lock-`;
/** Longest key segment (bytes), so that lock file names stay within NAME_MAX. */
const MAX_SEGMENT_BYTES = 200;

/** Options of {@link FsBlobStore}. */
export interface FsBlobStoreOptions {
  /**
   * A lock file older than this is considered left behind by a crashed writer and removed.
   * Locks are held only for a rename or a small read, so this can be short.
   * @defaultValue 10 000
   */
  staleLockMs?: number;
  /**
   * How long a conditional write waits for another writer's lock before failing with `TIMEOUT`.
   * @defaultValue 15 000
   */
  lockWaitMs?: number;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function backend(what: string, err: unknown): SlipstreamError {
  return SlipstreamError.wrap(err, "BACKEND", `fs blob store: ${what}`);
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function hashPath(path: string): Promise<string | undefined> {
  const hash = createHash("sha256");
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  } catch (err) {
    if (errno(err) === "ENOENT" || errno(err) === "EISDIR") return undefined;
    throw err;
  }
  return hash.digest("hex");
}

/** Opens `path` for reading; undefined when it (or a parent) does not exist. */
async function openForRead(path: string, key: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, "r");
  } catch (err) {
    if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") return undefined;
    throw backend(`opening ${key}`, err);
  }
}

/**
 * Objects as files under `rootDir`. Key `a/b/c` is the file `<rootDir>/a/b/c`; a key cannot
 * also be the parent of another key. Segments starting with `.slipstream-fs-` are reserved.
 *
 * @example
 * ```ts
 * const transport = new ArtifactTransport(new FsBlobStore("./shared-artifacts"));
 * ```
 */
export class FsBlobStore implements BlobStore {
  // put() writes each chunk (awaited) before it pulls the next one.
  readonly capabilities: BlobStoreCapabilities = { conditionalWrites: true, putReadsSequentially: true };
  /** The absolute root directory. */
  readonly rootDir: string;
  readonly #staleLockMs: number;
  readonly #lockWaitMs: number;

  constructor(rootDir: string, opts: FsBlobStoreOptions = {}) {
    if (typeof rootDir !== "string" || rootDir.length === 0) throw new TypeError("rootDir must be a non-empty path");
    this.rootDir = resolve(rootDir);
    this.#staleLockMs = opts.staleLockMs ?? 10_000;
    this.#lockWaitMs = opts.lockWaitMs ?? 15_000;
    if (!(this.#staleLockMs > 0)) throw new TypeError("staleLockMs must be positive");
    if (!(this.#lockWaitMs > 0)) throw new TypeError("lockWaitMs must be positive");
  }

  /** The file of `key` (validated: no traversal out of the root, no reserved names). */
  pathOf(key: string): string {
    assertBlobKey(key);
    for (const seg of key.split("/")) {
      if (seg.startsWith(RESERVED_PREFIX)) {
        throw new SlipstreamError(
          "INVALID_ARGUMENT",
          `key ${JSON.stringify(key)} uses the reserved prefix ${RESERVED_PREFIX}`,
        );
      }
      // Lock and temp names add up to 24 bytes to a segment; keep them under NAME_MAX (255).
      if (Buffer.byteLength(seg) > MAX_SEGMENT_BYTES) {
        throw new SlipstreamError(
          "INVALID_ARGUMENT",
          `key ${JSON.stringify(key.slice(0, 100))} has a segment longer than ${MAX_SEGMENT_BYTES} bytes`,
        );
      }
    }
    const path = resolve(this.rootDir, ...key.split("/"));
    if (!path.startsWith(this.rootDir + sep)) {
      throw new SlipstreamError("INVALID_ARGUMENT", `key ${JSON.stringify(key)} leaves the store root`);
    }
    return path;
  }

  #tempPath(path: string): string {
    return join(dirname(path), `${TMP_PREFIX}${randomBytes(8).toString("hex")}`);
  }

  async #ensureDir(path: string, key: string): Promise<void> {
    try {
      await mkdir(dirname(path), { recursive: true });
    } catch (err) {
      if (errno(err) === "EEXIST" || errno(err) === "ENOTDIR") {
        throw new SlipstreamError("BACKEND", `fs blob store: a parent of ${key} is an object, not a folder`, {
          cause: err,
        });
      }
      throw backend(`creating the folder of ${key}`, err);
    }
  }

  /** Writes `body` to a fresh temp file beside `path`, fsynced; returns the temp path. */
  async #writeTemp(path: string, body: AsyncIterable<Uint8Array> | Uint8Array, signal?: AbortSignal): Promise<string> {
    const tmp = this.#tempPath(path);
    let fh: FileHandle | undefined;
    try {
      fh = await open(tmp, "wx", 0o644);
      if (body instanceof Uint8Array) {
        await fh.writeFile(body);
      } else {
        for await (const chunk of body) {
          throwIfAborted(signal, "fs blob store put");
          await fh.write(chunk);
        }
      }
      throwIfAborted(signal, "fs blob store put");
      await fh.sync();
      await fh.close();
      fh = undefined;
      return tmp;
    } catch (err) {
      await fh?.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  async put(key: string, body: AsyncIterable<Uint8Array>, opts: BlobPutOptions = {}): Promise<void> {
    const path = this.pathOf(key);
    throwIfAborted(opts.signal, "fs blob store put");
    await this.#ensureDir(path, key);
    let tmp: string;
    try {
      tmp = await this.#writeTemp(path, body, opts.signal);
    } catch (err) {
      if (opts.signal?.aborted) throw abortedError(opts.signal, `fs blob store put ${key}`);
      throw backend(`writing ${key}`, err);
    }
    try {
      throwIfAborted(opts.signal, "fs blob store put");
      await this.#withLock(path, key, opts.signal, async () => {
        await rename(tmp, path);
        await fsyncPath(dirname(path));
      });
    } catch (err) {
      await unlink(tmp).catch(() => {});
      if (errno(err) === "EISDIR" || errno(err) === "ENOTEMPTY") {
        throw new SlipstreamError("BACKEND", `fs blob store: ${key} is a folder of other objects`, { cause: err });
      }
      throw backend(`publishing ${key}`, err);
    }
  }

  async get(key: string, opts: BlobOpOptions = {}): Promise<BlobBody | undefined> {
    const path = this.pathOf(key);
    throwIfAborted(opts.signal, "fs blob store get");
    const fh = await openForRead(path, key);
    if (!fh) return undefined;
    try {
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        return undefined;
      }
      const body = new PooledFileBody(fh, key, opts.signal);
      return { size: st.size, body, release: (chunk) => body.release(chunk) };
    } catch (err) {
      await fh.close().catch(() => {});
      throw backend(`reading ${key}`, err);
    }
  }

  /** Reads bytes `[start, end)` of `key` with positioned reads; `undefined` when absent. */
  async readRange(key: string, start: number, end: number, opts: BlobOpOptions = {}): Promise<Uint8Array | undefined> {
    const path = this.pathOf(key);
    throwIfAborted(opts.signal, "fs blob store read");
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && 0 <= start && start <= end)) {
      throw new SlipstreamError("INVALID_ARGUMENT", `bad range ${start}-${end}`);
    }
    const fh = await openForRead(path, key);
    if (!fh) return undefined;
    try {
      if (!(await fh.stat()).isFile()) return undefined;
      const out = Buffer.allocUnsafe(end - start);
      let n = 0;
      while (n < out.length) {
        const { bytesRead } = await fh.read(out, n, out.length - n, start + n);
        if (bytesRead === 0) break;
        n += bytesRead;
      }
      return out.subarray(0, n);
    } catch (err) {
      throw backend(`reading ${key}`, err);
    } finally {
      await fh.close().catch(() => {});
    }
  }

  async readSmall(key: string, opts: BlobReadSmallOptions): Promise<SmallBlob | undefined> {
    const path = this.pathOf(key);
    throwIfAborted(opts.signal, "fs blob store read");
    const got = await this.#readCapped(path, key, opts.maxBytes);
    return got && { bytes: got, version: sha256(got) };
  }

  async #readCapped(path: string, key: string, maxBytes: number): Promise<Uint8Array | undefined> {
    const fh = await openForRead(path, key);
    if (!fh) return undefined;
    try {
      const st = await fh.stat();
      if (!st.isFile()) return undefined;
      if (st.size > maxBytes) throw objectTooLarge(key, maxBytes, st.size);
      const buf = Buffer.alloc(maxBytes + 1);
      let n = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
        if (bytesRead === 0) break;
        n += bytesRead;
        if (n > maxBytes) throw objectTooLarge(key, maxBytes);
      }
      return new Uint8Array(buf.subarray(0, n));
    } catch (err) {
      throw backend(`reading ${key}`, err);
    } finally {
      await fh.close();
    }
  }

  async conditionalPut(
    key: string,
    bytes: Uint8Array,
    condition: PutCondition,
    opts: BlobOpOptions = {},
  ): Promise<ConditionalPutResult> {
    const path = this.pathOf(key);
    throwIfAborted(opts.signal, "fs blob store conditional put");
    await this.#ensureDir(path, key);
    const tmp = await this.#writeTemp(path, bytes).catch((err: unknown) => {
      throw backend(`writing ${key}`, err);
    });
    const version = sha256(bytes);
    try {
      return await this.#withLock(path, key, opts.signal, async (): Promise<ConditionalPutResult> => {
        if ("ifAbsent" in condition) {
          // link() creates the name only if it does not exist: atomic create-only, even
          // against writers that do not take the lock.
          try {
            await link(tmp, path);
          } catch (err) {
            if (errno(err) === "EEXIST") return { status: "conflict" };
            throw err;
          }
          await fsyncPath(dirname(path));
          return { status: "written", version };
        }
        const current = await hashPath(path);
        if (current === undefined || current !== condition.ifVersion) return { status: "conflict" };
        await rename(tmp, path);
        await fsyncPath(dirname(path));
        return { status: "written", version };
      });
    } catch (err) {
      throw backend(`conditional write of ${key}`, err);
    } finally {
      await unlink(tmp).catch(() => {});
    }
  }

  async *list(prefix: string, opts: BlobOpOptions = {}): AsyncGenerator<BlobInfo> {
    if (typeof prefix !== "string") throw new TypeError("prefix must be a string");
    throwIfAborted(opts.signal, "fs blob store list");
    // Walk from the deepest folder the prefix names completely; filter by the string prefix.
    const cut = prefix.lastIndexOf("/");
    const base = cut < 0 ? "" : prefix.slice(0, cut);
    let baseDir = this.rootDir;
    if (base !== "") {
      try {
        baseDir = this.pathOf(base);
      } catch {
        return; // a prefix no valid key can start with
      }
    }
    const walk = async function* (dir: string, rel: string): AsyncGenerator<BlobInfo> {
      let entries: import("node:fs").Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") return;
        throw backend(`listing ${rel || "/"}`, err);
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of entries) {
        if (e.name.startsWith(RESERVED_PREFIX)) continue;
        throwIfAborted(opts.signal, "fs blob store list");
        const key = rel === "" ? e.name : `${rel}/${e.name}`;
        const abs = join(dir, e.name);
        if (e.isDirectory()) {
          if (prefix.startsWith(`${key}/`) || key.startsWith(prefix) || prefix === "") yield* walk(abs, key);
        } else if (e.isFile() && key.startsWith(prefix)) {
          let st: import("node:fs").Stats;
          try {
            st = await stat(abs);
          } catch (err) {
            if (errno(err) === "ENOENT") continue;
            throw backend(`listing ${key}`, err);
          }
          yield { key, size: st.size, lastModified: st.mtime };
        }
      }
    };
    yield* walk(baseDir, base);
  }

  async delete(key: string, opts: BlobOpOptions = {}): Promise<void> {
    const path = this.pathOf(key);
    throwIfAborted(opts.signal, "fs blob store delete");
    try {
      await this.#withLock(path, key, opts.signal, async () => {
        try {
          await unlink(path);
        } catch (err) {
          if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") return;
          throw err;
        }
        await fsyncPath(dirname(path));
      });
    } catch (err) {
      if (errno(err) === "ENOENT") return;
      throw backend(`deleting ${key}`, err);
    }
  }

  /**
   * Removes temp files left by writers that crashed mid-put, and lock files older than
   * `staleLockMs`, when they were last touched more than `olderThanMs` ago. Pick a value
   * above the longest put you run: a live writer's temp file is touched on every write.
   * Returns the number of files removed.
   *
   * @param olderThanMs - @defaultValue 86 400 000 (one day)
   */
  async removeStaleTempFiles(olderThanMs = 86_400_000, opts: BlobOpOptions = {}): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    const walk = async (dir: string): Promise<void> => {
      throwIfAborted(opts.signal, "fs blob store sweep");
      let entries: import("node:fs").Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (errno(err) === "ENOENT") return;
        throw backend(`sweeping ${dir}`, err);
      }
      for (const e of entries) {
        const abs = join(dir, e.name);
        if (e.isDirectory()) {
          await walk(abs);
          continue;
        }
        const isTemp = e.name.startsWith(TMP_PREFIX);
        const isLock = e.name.startsWith(LOCK_PREFIX);
        if (!isTemp && !isLock) continue;
        const st = await lstat(abs).catch(() => undefined);
        if (!st || st.mtimeMs > cutoff) continue;
        if (isLock) {
          // Through the recovery protocol, so a live lock is never removed.
          if (await this.#recoverStaleLock(abs)) removed++;
          continue;
        }
        await unlink(abs).then(
          () => removed++,
          () => {},
        );
      }
    };
    await walk(this.rootDir);
    return removed;
  }

  /**
   * Runs `fn` holding the lock file of `path`. A lock is created complete and exclusively
   * (a temp file with a unique nonce, then `link()`), refreshed while held, and released
   * only by its owner (matched by nonce). See {@link FsBlobStore.#recoverStaleLock} for
   * how a crashed writer's lock is taken over without ever removing a live one.
   */
  async #withLock<T>(path: string, key: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    const lockPath = join(dirname(path), `${LOCK_PREFIX}${path.slice(dirname(path).length + 1)}`);
    const deadline = Date.now() + this.#lockWaitMs;
    const me = newLockOwner();
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(signal, `fs blob store lock of ${key}`);
      if (await this.#createLock(lockPath, me)) break;
      await this.#recoverStaleLock(lockPath);
      if (Date.now() > deadline) {
        throw new SlipstreamError("TIMEOUT", `fs blob store: waited ${this.#lockWaitMs} ms for the lock of ${key}`);
      }
      await sleep(Math.min(100, 2 + attempt * 2 + Math.floor(Math.random() * 5)), signal);
    }
    // A held lock stays fresh, so a slow critical section is never mistaken for a crash.
    const refresh = setInterval(
      () => {
        const now = new Date();
        utimes(lockPath, now, now).catch(() => {});
      },
      Math.max(50, Math.floor(this.#staleLockMs / 3)),
    );
    refresh.unref();
    try {
      return await fn();
    } finally {
      clearInterval(refresh);
      // Only the owner removes a live lock; recovery removes only dead ones.
      if ((await readLock(lockPath))?.raw === me.raw) await unlink(lockPath).catch(() => {});
    }
  }

  /** Creates `lockPath` holding `owner`, complete, if absent; false when it exists. */
  async #createLock(lockPath: string, owner: LockOwner): Promise<boolean> {
    const tmp = join(dirname(lockPath), `${TMP_PREFIX}${randomBytes(8).toString("hex")}`);
    try {
      await writeFile(tmp, owner.raw, { flag: "wx", mode: 0o644 });
    } catch (err) {
      if (errno(err) !== "ENOENT") throw err;
      await mkdir(dirname(lockPath), { recursive: true });
      await writeFile(tmp, owner.raw, { flag: "wx", mode: 0o644 });
    }
    try {
      await link(tmp, lockPath);
      return true;
    } catch (err) {
      if (errno(err) === "EEXIST") return false;
      throw err;
    } finally {
      await unlink(tmp).catch(() => {});
    }
  }

  /**
   * A lock is stale when its owner is a dead process on this host, or when it has not been
   * refreshed for `staleLockMs` (owners refresh theirs every `staleLockMs / 3`).
   */
  #isStale(owner: LockOwner | undefined, mtimeMs: number): boolean {
    if (Date.now() - mtimeMs > this.#staleLockMs) return true;
    return owner?.host === hostname() && owner.pid !== undefined && !processAlive(owner.pid);
  }

  /**
   * Takes over a crashed writer's lock. Recoverers serialise on a second, short-lived lock
   * (`<lock>.recover`); under it, the main lock is removed only if it still holds exactly the
   * content judged stale. A live owner's lock is never removed: it is not stale, and a new
   * lock always has a new nonce. Returns true when it removed a lock.
   */
  async #recoverStaleLock(lockPath: string): Promise<boolean> {
    const seen = await readLock(lockPath);
    if (!seen || !this.#isStale(seen, seen.mtimeMs)) return false;
    const recoverPath = `${lockPath}.recover`;
    const me = newLockOwner();
    if (!(await this.#createLock(recoverPath, me))) {
      // Another recoverer is at it. Its lock is held for a few system calls; one left by a
      // crash in that window is cleared by the same staleness rule.
      const other = await readLock(recoverPath);
      if (other && this.#isStale(other, other.mtimeMs)) {
        const again = await readLock(recoverPath);
        if (again?.raw === other.raw) await unlink(recoverPath).catch(() => {});
      }
      return false;
    }
    try {
      const now = await readLock(lockPath);
      if (!now || now.raw !== seen.raw || !this.#isStale(now, now.mtimeMs)) return false;
      await unlink(lockPath);
      return true;
    } catch {
      return false;
    } finally {
      if ((await readLock(recoverPath))?.raw === me.raw) await unlink(recoverPath).catch(() => {});
    }
  }
}

/** The identity written into a lock file; `raw` is its exact content. */
interface LockOwner {
  readonly raw: string;
  readonly pid: number | undefined;
  readonly host: string | undefined;
}

/** A lock content unique to this acquisition (nonce), naming this process and host. */
function newLockOwner(): LockOwner {
  const doc = {
    nonce: randomBytes(12).toString("hex"),
    pid: process.pid,
    host: hostname(),
    at: new Date().toISOString(),
  };
  return { raw: JSON.stringify(doc), pid: doc.pid, host: doc.host };
}

/** Reads a lock file: its content, owner and mtime; undefined when absent. */
async function readLock(path: string): Promise<(LockOwner & { mtimeMs: number }) | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch {
    return undefined;
  }
  try {
    const st = await fh.stat();
    const raw = (await fh.readFile({ encoding: "utf8" })).slice(0, 4096);
    let pid: number | undefined;
    let host: string | undefined;
    try {
      const doc = JSON.parse(raw) as { pid?: unknown; host?: unknown };
      if (Number.isSafeInteger(doc.pid)) pid = doc.pid as number;
      if (typeof doc.host === "string") host = doc.host;
    } catch {
      // unparseable (foreign or damaged): judged by its age alone
    }
    return { raw, pid, host, mtimeMs: st.mtimeMs };
  } catch {
    return undefined;
  } finally {
    await fh.close().catch(() => {});
  }
}

/** Whether a process with this pid exists on this host. */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errno(err) === "EPERM";
  }
}

/**
 * An object's bytes in 1 MiB pieces, the next read in flight while the caller handles the
 * last one (`readChunks`). Chunks the caller hands back through `release` are read into
 * again; the others are left to the caller. Ending the iteration early — even before the
 * first `next()` — closes the file.
 */
class PooledFileBody implements AsyncIterable<Uint8Array> {
  readonly #fh: FileHandle;
  readonly #key: string;
  readonly #pool = new ChunkPool();
  readonly #chunks: AsyncGenerator<Uint8Array>;
  #closing: Promise<void> | undefined;
  #iterator: AsyncIterator<Uint8Array> | undefined;

  constructor(fh: FileHandle, key: string, signal: AbortSignal | undefined) {
    this.#fh = fh;
    this.#key = key;
    this.#chunks = readChunks(fh, this.#pool, { signal });
  }

  /** The caller is done with `chunk` (a chunk of this body): its buffer may be read into again. */
  release(chunk: Uint8Array): void {
    this.#pool.release(chunk);
  }

  async #next(): Promise<IteratorResult<Uint8Array>> {
    try {
      const r = await this.#chunks.next();
      if (r.done) await this.#close();
      return r;
    } catch (err) {
      await this.#close();
      throw SlipstreamError.is(err) ? err : backend(`reading ${this.#key}`, err);
    }
  }

  #close(): Promise<void> {
    this.#closing ??= (async () => {
      // Ends the reads first (none is in flight afterwards), then the file.
      await this.#chunks.return(undefined).catch(() => {});
      await this.#fh.close().catch(() => {});
    })();
    return this.#closing;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    // One iteration per body: a second call gets the same iterator.
    this.#iterator ??= {
      next: () => this.#next(),
      return: async (value?: unknown) => {
        await this.#close();
        return { done: true, value: value as undefined };
      },
      throw: async (err?: unknown) => {
        await this.#close();
        throw err;
      },
    };
    return this.#iterator;
  }
}
