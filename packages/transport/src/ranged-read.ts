/**
 * Parallel ranged reads with bounded memory: the helper a BlobStore's `get` uses to fetch a
 * large object as several ranges at once (S3 ranged GetObject, Azure ranged Get Blob) while
 * still handing the caller one ordered byte stream.
 */
import { SlipstreamError } from "@slipstream/core";

/** Options of {@link parallelRanges}. */
export interface ParallelRangesOptions {
  /** The object's size in bytes. */
  size: number;
  /** Where to start (bytes before it were already delivered, e.g. by a first ranged request). */
  start?: number;
  /** Bytes per range request. */
  partBytes: number;
  /** Range requests in flight at once; at most `concurrency` parts are held in memory. */
  concurrency: number;
  /** Ends every request in flight and the stream. */
  signal?: AbortSignal;
  /**
   * Fetches bytes `[start, end)` whole. It must return exactly `end - start` bytes of the
   * same object version (e.g. with If-Match on the first answer's ETag).
   */
  readRange: (start: number, end: number, signal: AbortSignal) => Promise<Uint8Array>;
  /** Called when a range has arrived (progress for idle deadlines). */
  onPart?: () => void;
}

/**
 * Streams bytes `[start, size)` of an object in order, fetched as ranges of `partBytes` with
 * up to `concurrency` requests in flight. Memory stays at most `concurrency × partBytes`.
 * A failed range or a range of the wrong length fails the stream (`BACKEND`) and cancels
 * the others; ending the iteration early cancels them too.
 */
export async function* parallelRanges(opts: ParallelRangesOptions): AsyncGenerator<Uint8Array> {
  const { size, partBytes, concurrency } = opts;
  if (!Number.isSafeInteger(partBytes) || partBytes <= 0) throw new TypeError("partBytes must be a positive integer");
  if (!Number.isSafeInteger(concurrency) || concurrency <= 0) {
    throw new TypeError("concurrency must be a positive integer");
  }
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(opts.signal?.reason);
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  let next = opts.start ?? 0;
  const inFlight: Promise<Uint8Array>[] = [];
  const launch = () => {
    const start = next;
    const end = Math.min(size, start + partBytes);
    next = end;
    const part = opts.readRange(start, end, ctl.signal).then((bytes) => {
      if (bytes.byteLength !== end - start) {
        throw new SlipstreamError(
          "BACKEND",
          `ranged read of bytes ${start}-${end - 1} returned ${bytes.byteLength} bytes instead of ${end - start}`,
        );
      }
      opts.onPart?.();
      return bytes;
    });
    // Failures reach the consumer when it awaits this part; never as an unhandled rejection.
    part.catch(() => {});
    inFlight.push(part);
  };
  try {
    while (next < size && inFlight.length < concurrency) launch();
    while (inFlight.length > 0) {
      const bytes = await (inFlight.shift() as Promise<Uint8Array>);
      if (next < size) launch();
      yield bytes;
    }
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    if (inFlight.length > 0) ctl.abort(new SlipstreamError("ABORTED", "ranged read ended early"));
  }
}

/**
 * One body made of `head` followed by `tail()` (started only once `head` is done). Ending the
 * iteration early — even before the first `next()` — releases `head` (its iterator's
 * `return()`), and the tail when it was started, as {@link BlobBody} requires.
 */
export function chainBodies(
  head: AsyncIterable<Uint8Array>,
  tail: () => AsyncIterable<Uint8Array>,
): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      const first = head[Symbol.asyncIterator]();
      let second: AsyncIterator<Uint8Array> | undefined;
      const close = async () => {
        await first.return?.();
        await second?.return?.();
      };
      return {
        async next(): Promise<IteratorResult<Uint8Array>> {
          if (second === undefined) {
            const r = await first.next();
            if (!r.done) return r;
            second = tail()[Symbol.asyncIterator]();
          }
          return second.next();
        },
        async return(value?: unknown): Promise<IteratorResult<Uint8Array>> {
          await close();
          return { done: true, value: value as Uint8Array };
        },
        async throw(err?: unknown): Promise<IteratorResult<Uint8Array>> {
          await close();
          throw err;
        },
      };
    },
  };
}
