import { SlipstreamError } from "@slipstream/core";
import { describe, expect, it } from "vitest";
import { transferDeadline } from "../src/deadline.js";

const never = () => new Promise<never>(() => {});
async function failure(p: Promise<unknown>): Promise<SlipstreamError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!SlipstreamError.is(err)) throw new Error(`expected a SlipstreamError, got ${String(err)}`);
  return err;
}

describe("transferDeadline", () => {
  it("fires TIMEOUT 'stalled' when no progress is made for idleMs, even if the work ignores its signal", async () => {
    const d = transferDeadline("copy", { idleMs: 50, overallMs: 60_000 });
    const err = await failure(d.run(never));
    expect(err.code).toBe("TIMEOUT");
    expect(err.message).toMatch(/copy stalled: no progress for 50 ms/);
    expect(d.signal.aborted).toBe(true);
    d.dispose();
  });

  it("touch() keeps a slow but moving transfer alive; the overall bound still ends it", async () => {
    const d = transferDeadline("copy", { idleMs: 250, overallMs: 600 });
    const ticker = setInterval(() => d.touch(), 20);
    try {
      const err = await failure(d.run(never));
      expect(err.code).toBe("TIMEOUT");
      expect(err.message).toMatch(/timed out after 600 ms/);
    } finally {
      clearInterval(ticker);
      d.dispose();
    }
  });

  it("the caller's abort wins with ABORTED and the work's signal fires", async () => {
    const ctl = new AbortController();
    const d = transferDeadline("copy", { idleMs: 60_000, overallMs: 60_000, signal: ctl.signal });
    let seen: AbortSignal | undefined;
    const pending = failure(
      d.run((s) => {
        seen = s;
        return never();
      }),
    );
    ctl.abort();
    expect((await pending).code).toBe("ABORTED");
    expect(seen?.aborted).toBe(true);
    d.dispose();
  });

  it("an already-aborted signal refuses to start", () => {
    expect(() => transferDeadline("copy", { idleMs: 1, overallMs: 1, signal: AbortSignal.abort() })).toThrow(/aborted/);
  });

  it("results and errors of the work pass through when the deadline does not fire", async () => {
    const d = transferDeadline("copy", { idleMs: 1_000, overallMs: 1_000 });
    expect(await d.run(async () => 42)).toBe(42);
    await expect(d.run(async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    d.dispose();
    expect(d.signal.aborted).toBe(false);
  });
});
