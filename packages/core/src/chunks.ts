/**
 * Reading files in large pieces into reused memory. A fresh 1 MiB buffer per read costs
 * page faults and the garbage collections V8 runs for external memory — at hundreds of MiB
 * a second, more than the copy itself — so artifact uploads and downloads read into a few
 * buffers that their consumer hands back.
 */
import type { FileHandle } from "node:fs/promises";
import { throwIfAborted } from "./async.js";

/** Bytes per piece of a {@link ChunkPool} by default. */
export const CHUNK_BYTES = 1 << 20;

/**
 * Read buffers lent out as chunks and handed back by whoever consumed them. `take` never
 * waits: when every buffer is out it makes one more, so a chunk that never comes back only
 * costs its memory (the pool holds lent chunks weakly).
 */
export class ChunkPool {
  /** Bytes per buffer. */
  readonly chunkBytes: number;
  readonly #free: Buffer[] = [];
  readonly #owner = new WeakMap<Uint8Array, Buffer>();

  constructor(chunkBytes = CHUNK_BYTES) {
    this.chunkBytes = chunkBytes;
  }

  /** A buffer to read into: a given-back one, or a new one. */
  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.chunkBytes);
  }

  /** The first `n` bytes of `buf`, as a chunk that {@link ChunkPool.release} gives back. */
  lend(buf: Buffer, n: number): Uint8Array {
    const view = buf.subarray(0, n);
    this.#owner.set(view, buf);
    return view;
  }

  /** `buf`, taken but not lent, goes back. */
  give(buf: Buffer): void {
    this.#free.push(buf);
  }

  /** Whoever consumed `chunk` is done with it: its buffer may be read into again (no-op for other chunks). */
  release(chunk: Uint8Array): void {
    const buf = this.#owner.get(chunk);
    if (buf === undefined) return;
    this.#owner.delete(chunk);
    this.#free.push(buf);
  }
}

/**
 * The bytes of `fh` from offset 0 — up to `limit` bytes, or to its end — as chunks lent from
 * `pool` (release each when done with it), the next read in flight while the consumer
 * handles the last chunk. Checks `signal` before every read. Leaves `fh` open; once the
 * iteration ends, early or not, no read of it is in flight.
 */
export async function* readChunks(
  fh: FileHandle,
  pool: ChunkPool,
  opts: { limit?: number; signal?: AbortSignal | undefined } = {},
): AsyncGenerator<Uint8Array> {
  const limit = opts.limit ?? Number.POSITIVE_INFINITY;
  let pos = 0;
  const readNext = async (): Promise<{ buf: Buffer; n: number }> => {
    const buf = pool.take();
    try {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, limit - pos), pos);
      pos += bytesRead;
      return { buf, n: bytesRead };
    } catch (err) {
      pool.give(buf);
      throw err;
    }
  };
  let next: Promise<{ buf: Buffer; n: number }> | undefined;
  try {
    throwIfAborted(opts.signal, "reading a file");
    next = readNext();
    while (next !== undefined) {
      const { buf, n }: { buf: Buffer; n: number } = await next;
      next = undefined;
      if (n === 0) {
        pool.give(buf);
        return;
      }
      if (opts.signal?.aborted) pool.give(buf);
      throwIfAborted(opts.signal, "reading a file");
      if (pos < limit) next = readNext();
      yield pool.lend(buf, n);
    }
  } finally {
    // Stopped early (a failure, an abort, or the consumer gave up): the read in flight ends first.
    const pending = await next?.catch(() => undefined);
    if (pending) pool.give(pending.buf);
  }
}
