import { collect, forEachConcurrent, SlipstreamError, sleep, withTimeout } from "@slipstream/core";
import { describe, expect, it } from "vitest";

describe("withTimeout", () => {
  it("returns the value when fn finishes in time", async () => {
    expect(await withTimeout("op", 1000, undefined, async () => 5)).toBe(5);
  });

  it("rejects with TIMEOUT even if fn ignores its signal", async () => {
    const never = new Promise<number>(() => {});
    const err = await withTimeout("slow op", 20, undefined, () => never).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "TIMEOUT")).toBe(true);
    expect((err as Error).message).toMatch(/slow op timed out after 20 ms/);
  });

  it("rejects with ABORTED when the caller aborts, and fn sees its signal fire", async () => {
    const ctl = new AbortController();
    let inner: AbortSignal | undefined;
    const p = withTimeout("op", 10_000, ctl.signal, (s) => {
      inner = s;
      return new Promise<number>(() => {});
    });
    ctl.abort();
    const err = await p.catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "ABORTED")).toBe(true);
    expect(inner?.aborted).toBe(true);
  });

  it("rejects at once with ABORTED for an already-aborted signal", async () => {
    const ctl = new AbortController();
    ctl.abort();
    let called = false;
    const err = await withTimeout("op", 1000, ctl.signal, async () => {
      called = true;
    }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "ABORTED")).toBe(true);
    expect(called).toBe(false);
  });

  it("passes fn's own errors through", async () => {
    await expect(withTimeout("op", 1000, undefined, async () => Promise.reject(new Error("own")))).rejects.toThrow(
      "own",
    );
  });
});

describe("sleep and collect", () => {
  it("sleep aborts with ABORTED", async () => {
    const ctl = new AbortController();
    const p = sleep(10_000, ctl.signal);
    ctl.abort();
    expect(SlipstreamError.is(await p.catch((e: unknown) => e), "ABORTED")).toBe(true);
  });

  it("collect drains an async iterable", async () => {
    async function* gen() {
      yield 1;
      yield 2;
    }
    expect(await collect(gen())).toEqual([1, 2]);
  });
});

describe("forEachConcurrent", () => {
  it("visits every item once, never more than `limit` at a time", async () => {
    const seen: number[] = [];
    let running = 0;
    let peak = 0;
    await forEachConcurrent([5, 1, 4, 2, 3, 0, 6], 3, async (item, index) => {
      expect(index).toBe([5, 1, 4, 2, 3, 0, 6].indexOf(item));
      running++;
      peak = Math.max(peak, running);
      await sleep(item * 2);
      seen.push(item);
      running--;
    });
    expect(seen.sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(peak).toBe(3);
  });

  it("starts nothing after the first failure, waits for the calls in flight, throws the first error", async () => {
    const started: number[] = [];
    let finished = 0;
    const err = await forEachConcurrent([0, 1, 2, 3, 4, 5], 2, async (item) => {
      started.push(item);
      if (item === 1) throw new Error("one failed");
      if (item === 2) throw new Error("two failed too");
      await sleep(20);
      finished++;
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe("one failed");
    // 0 and 1 start together; 1 fails at once, so only 0 (already running) goes on.
    expect(started).toEqual([0, 1]);
    expect(finished).toBe(1);
  });

  it("handles an empty list and refuses a limit below 1", async () => {
    await forEachConcurrent([], 4, async () => {
      throw new Error("never called");
    });
    await expect(forEachConcurrent([1], 0, async () => {})).rejects.toThrow(TypeError);
  });
});
