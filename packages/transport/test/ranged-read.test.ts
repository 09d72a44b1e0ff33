import { randomFillSync } from "node:crypto";
import { SlipstreamError } from "@slipstream/core";
import { describe, expect, it } from "vitest";
import { chainBodies, parallelRanges } from "../src/index.js";

const object = randomFillSync(Buffer.alloc(1000 * 1024 + 123));

async function collect(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const chunk of body) out.push(Buffer.from(chunk));
  return Buffer.concat(out);
}

describe("parallelRanges", () => {
  it("delivers the bytes in order with at most `concurrency` ranges in flight", async () => {
    let inFlight = 0;
    let most = 0;
    const body = parallelRanges({
      size: object.length,
      start: 4096,
      partBytes: 64 * 1024,
      concurrency: 3,
      readRange: async (start, end) => {
        inFlight++;
        most = Math.max(most, inFlight);
        // Later ranges answer first: order must still hold.
        await new Promise((r) => setTimeout(r, (end % 7) + 1));
        inFlight--;
        return object.subarray(start, end);
      },
    });
    expect((await collect(body)).equals(object.subarray(4096))).toBe(true);
    expect(most).toBe(3);
  });

  it("a range of the wrong length fails the stream with BACKEND", async () => {
    const body = parallelRanges({
      size: object.length,
      partBytes: 256 * 1024,
      concurrency: 2,
      readRange: async (start, end) => object.subarray(start, end === object.length ? end - 1 : end),
    });
    const err = await collect(body).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "BACKEND")).toBe(true);
    expect((err as Error).message).toMatch(/returned \d+ bytes instead of/);
  });

  it("ending the iteration early aborts the ranges still in flight", async () => {
    const signals: AbortSignal[] = [];
    const body = parallelRanges({
      size: object.length,
      partBytes: 64 * 1024,
      concurrency: 4,
      readRange: async (start, end, signal) => {
        signals.push(signal);
        await new Promise((r) => setTimeout(r, start === 0 ? 1 : 50));
        return object.subarray(start, end);
      },
    });
    for await (const _ of body) break;
    expect(signals.length).toBe(5);
    expect(signals.every((s) => s.aborted)).toBe(true);
  });
});

describe("chainBodies", () => {
  it("concatenates the head and the lazily started tail", async () => {
    let started = false;
    const body = chainBodies(
      (async function* () {
        yield object.subarray(0, 10);
      })(),
      () => {
        started = true;
        return (async function* () {
          yield object.subarray(10, 20);
        })();
      },
    );
    expect(started).toBe(false);
    expect((await collect(body)).equals(object.subarray(0, 20))).toBe(true);
  });

  it("return() before the first next() releases the head and never starts the tail", async () => {
    let released = false;
    let started = false;
    const head: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]: () => ({
        next: async () => ({ done: false, value: object.subarray(0, 1) }),
        return: async () => {
          released = true;
          return { done: true, value: undefined };
        },
      }),
    };
    const it = chainBodies(head, () => {
      started = true;
      return (async function* () {})();
    })[Symbol.asyncIterator]();
    await it.return?.();
    expect(released).toBe(true);
    expect(started).toBe(false);
  });
});
