/**
 * A streamed GetObject body with bounded waits (invariant 7): each wait for the next chunk
 * is bounded by an idle timeout, the caller's signal destroys the stream, and a body that
 * ends short of its Content-Length is an error, not a silently truncated object.
 */
import type { Readable } from "node:stream";
import { abortedError, SlipstreamError } from "@slipstream/core";
import { backendError } from "./s3-errors.js";

/** Options of {@link guardedBody}. */
export interface GuardedBodyOptions {
  /** Names the transfer in errors, e.g. `s3 get a/b`. */
  what: string;
  /** The expected number of bytes (Content-Length). */
  size: number;
  /** Longest wait for one chunk. */
  idleMs: number;
  /** The caller's signal: firing it destroys the stream (`ABORTED`). */
  signal?: AbortSignal | undefined;
}

/**
 * Wraps `stream` as an async iterable that can be iterated once. Its iterator's `return()`
 * always destroys the stream, even before the first `next()` (an unstarted async generator
 * would skip its `finally` and leak the connection).
 */
export function guardedBody(stream: Readable, opts: GuardedBodyOptions): AsyncIterable<Uint8Array> {
  let used = false;
  let onAbort: (() => void) | undefined;
  const release = (): void => {
    if (onAbort) opts.signal?.removeEventListener("abort", onAbort);
    onAbort = undefined;
  };
  const destroy = (err?: Error): void => {
    release();
    if (!stream.destroyed) stream.destroy(err);
  };
  if (opts.signal) {
    onAbort = () => destroy(abortedError(opts.signal, opts.what));
    if (opts.signal.aborted) onAbort();
    else opts.signal.addEventListener("abort", onAbort, { once: true });
  }

  async function* read(): AsyncGenerator<Uint8Array> {
    const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let received = 0;
    try {
      for (;;) {
        const timer = setTimeout(
          () => destroy(new SlipstreamError("TIMEOUT", `${opts.what} stalled: no data for ${opts.idleMs} ms`)),
          opts.idleMs,
        );
        let r: IteratorResult<Buffer>;
        try {
          r = await it.next();
        } finally {
          clearTimeout(timer);
        }
        if (r.done) break;
        received += r.value.byteLength;
        yield r.value;
      }
      if (received !== opts.size) {
        throw new SlipstreamError("BACKEND", `${opts.what}: received ${received} of ${opts.size} bytes`);
      }
    } catch (err) {
      if (opts.signal?.aborted) throw abortedError(opts.signal, opts.what);
      throw backendError(opts.what, err);
    } finally {
      destroy();
    }
  }

  return {
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      if (used) throw new TypeError(`${opts.what}: the body can be read only once`);
      used = true;
      const inner = read();
      return {
        next: () => inner.next(),
        return: async (value?: unknown) => {
          destroy();
          await inner.return(undefined);
          return { done: true, value: value as Uint8Array };
        },
        throw: async (err?: unknown) => {
          destroy();
          return inner.throw(err);
        },
      };
    },
  };
}

/**
 * Reads a whole small body, refusing more than `maxBytes` (it stops reading at `maxBytes + 1`).
 * Returns `undefined` when the body is larger than `maxBytes`.
 */
export async function readCapped(stream: Readable, maxBytes: number): Promise<Uint8Array | undefined> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      n += chunk.byteLength;
      if (n > maxBytes) return undefined;
      chunks.push(chunk);
    }
  } finally {
    if (!stream.destroyed) stream.destroy();
  }
  return new Uint8Array(Buffer.concat(chunks, n));
}
