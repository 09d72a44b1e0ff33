/**
 * Setup and verification steps run in a short-lived child process, so the RSS sampled in
 * the benchmark process belongs to the phases being measured: hydrating a fold or walking
 * two folds side by side grows V8's heap, and V8 does not hand that memory back.
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { WatchCursor } from "@slipstream/core";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { putUpdates } from "./data.js";
import { compareFolds } from "./fold.js";

/** A step a side process runs. */
export type SideTask =
  | { readonly kind: "hydrate"; readonly dir: string; readonly entries: number; readonly valueBytes: number }
  | { readonly kind: "compare"; readonly a: string; readonly b: string };

/** Runs `task` in a child process; resolves with its answer (compare: "equal" or the first difference). */
export function runSide(task: SideTask): Promise<string> {
  const script = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    const child = fork(script, ["--side-task"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    let answer: { ok: boolean; value: string } | undefined;
    child.on("message", (m: { ok: boolean; value: string }) => {
      answer = m;
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (!answer) reject(new Error(`side process (${task.kind}) exited (${signal ?? code}) without an answer`));
      else if (answer.ok) resolve(answer.value);
      else reject(new Error(answer.value));
    });
    child.send(task);
  });
}

async function run(task: SideTask): Promise<string> {
  if (task.kind === "hydrate") {
    const store = await LevelSnapshotStore.open(task.dir);
    try {
      for (let i = 0; i < task.entries; i += 1000) {
        const slice = putUpdates(Math.min(1000, task.entries - i), task.valueBytes, i);
        await store.apply(slice, WatchCursor.fromRevision(BigInt(i + slice.length)));
      }
    } finally {
      await store.close();
    }
    return String(task.entries);
  }
  const a = await LevelSnapshotStore.open(task.a);
  const b = await LevelSnapshotStore.open(task.b);
  try {
    return await compareFolds(a, b);
  } finally {
    await a.close();
    await b.close();
  }
}

if (process.argv[2] === "--side-task") {
  process.once("message", (task: SideTask) => {
    void run(task).then(
      (value) => process.send?.({ ok: true, value }, () => process.disconnect?.()),
      (err: unknown) =>
        process.send?.({ ok: false, value: err instanceof Error ? (err.stack ?? err.message) : String(err) }, () =>
          process.disconnect?.(),
        ),
    );
  });
}
