import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { type KvUpdate, VersionToken, WatchCursor } from "@slipstream/core";
import { MemorySnapshotStore } from "@slipstream/fold";
import { repoRoot, waitFor } from "@slipstream/testkit";
import type { RoundExporter, RoundLease, RoundLeaseGuard } from "@slipstream/transport";

/** A lease in one process: one holder until it expires, completes are recorded, abandon frees it. */
export class InProcessLease implements RoundLease {
  holder: number | undefined;
  expiresAt = 0;
  readonly completed: WatchCursor[] = [];
  abandoned = 0;
  #next = 0;

  async tryAcquire(ttlMs: number): Promise<RoundLeaseGuard | undefined> {
    if (this.holder !== undefined && Date.now() < this.expiresAt) return undefined;
    const me = ++this.#next;
    this.holder = me;
    this.expiresAt = Date.now() + ttlMs;
    return {
      complete: async (cursor) => {
        if (this.holder === me) this.completed.push(cursor);
      },
      abandon: async () => {
        this.abandoned++;
        if (this.holder === me) this.holder = undefined;
      },
    };
  }
}

/** A memory fold holding `n` keys `route.<i>` at revisions 1..n. */
export async function foldWith(n: number, from = 1): Promise<MemorySnapshotStore> {
  const store = new MemorySnapshotStore();
  const batch: KvUpdate[] = [];
  for (let i = from; i < from + n; i++) {
    batch.push({
      type: "put",
      entry: {
        key: `route.${i}`,
        value: new TextEncoder().encode(`value ${i}`),
        version: VersionToken.fromRevision(BigInt(i)),
      },
    });
  }
  await store.apply(batch, WatchCursor.fromRevision(BigInt(from + n - 1)));
  return store;
}

/** Adds puts up to `revision` to a memory fold. */
export async function advance(store: MemorySnapshotStore, revision: number): Promise<void> {
  const start = Number(store.cursor.revision ?? 0n) + 1;
  const batch: KvUpdate[] = [];
  for (let i = start; i <= revision; i++) {
    batch.push({
      type: "put",
      entry: {
        key: `route.${i}`,
        value: new TextEncoder().encode(`value ${i}`),
        version: VersionToken.fromRevision(BigInt(i)),
      },
    });
  }
  await store.apply(batch, WatchCursor.fromRevision(BigInt(revision)));
}

/** The fold as an export source (what `AppliedWatch.requestExport` does, without a watch). */
export function exporterOf(store: MemorySnapshotStore): RoundExporter & { calls: number } {
  const ex = {
    calls: 0,
    requestExport: (destDir: string, opts?: { signal?: AbortSignal }) => {
      ex.calls++;
      return store.exportTo(destDir, opts);
    },
  };
  return ex;
}

/** Every key and value of a store, for comparing folds. */
export async function dump(store: MemorySnapshotStore): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for await (const e of store.range("")) out.push([e.key, new TextDecoder().decode(e.value)]);
  return out;
}

/**
 * Runs the fixture script `worker` with `args` (TypeScript, through tsx), waits until it
 * writes `marker` (its freeze point), kills it with SIGKILL and returns what the marker says.
 * A cleanup that kills it anyway is pushed onto `cleanups` first.
 */
export async function killAtFreezePoint(
  worker: string,
  args: readonly string[],
  marker: string,
  what: string,
  cleanups: (() => Promise<void>)[],
): Promise<string> {
  const child = spawn(process.execPath, ["--conditions=@slipstream/source", "--import", "tsx", worker, ...args], {
    cwd: repoRoot(),
    stdio: "ignore",
  });
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  await waitFor(
    async () =>
      readFile(marker, "utf8").then(
        () => true,
        () => false,
      ),
    { timeoutMs: 60_000, message: `${what} reached its freeze point` },
  );
  const said = await readFile(marker, "utf8");
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await exited;
  return said;
}
