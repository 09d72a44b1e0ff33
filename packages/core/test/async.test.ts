import { collect, SlipstreamError, sleep, withTimeout } from "@slipstream/core";
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
