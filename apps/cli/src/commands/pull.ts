import { lstat, readdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { assertScopeCovers, cursorRank, describeScope, resolveImportScope, type WatchScope } from "@slipstream/core";
import { BACKEND_ID, LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { importRemote } from "@slipstream/transport";
import { CliError, EXIT, type ExitCode } from "../exit.js";
import { type CliIo, formatBytes, formatDuration, printFields, printJson } from "../output.js";
import { progressBar } from "../progress.js";
import { pickArtifact } from "../remote.js";
import { openTransportUrl } from "../transport-url.js";
import {
  describeEncryption,
  describeSignature,
  encryptionJson,
  loadTrust,
  signatureJson,
  type TrustFlags,
} from "../trust.js";

/** Refuses an occupied destination before anything is fetched (`REFUSED`), and a missing parent (`INPUT`). */
async function checkDestination(dest: string): Promise<void> {
  const parent = dirname(resolve(dest));
  const p = await lstat(parent).catch(() => undefined);
  if (!p?.isDirectory()) {
    throw new CliError(EXIT.INPUT, "NOT_FOUND", `the parent directory of ${dest} (${parent}) does not exist`);
  }
  const st = await lstat(dest).catch(() => undefined);
  if (!st) return;
  if (!st.isDirectory())
    throw new CliError(
      EXIT.REFUSED,
      "DESTINATION_OCCUPIED",
      `${dest} exists and is not a directory; refusing to replace it`,
    );
  if ((await readdir(dest)).length > 0) {
    throw new CliError(
      EXIT.REFUSED,
      "DESTINATION_OCCUPIED",
      `${dest} is not empty; refusing to pull over it (choose an absent or empty directory)`,
    );
  }
}

/** `pull <transportUrl> <destDir>`: download + verified import into a new fold. */
export async function pullCommand(
  io: CliIo,
  url: string,
  dest: string,
  opts: { json?: boolean; key?: string; prefix?: string[]; progress?: boolean; timeoutMs: number } & TrustFlags,
): Promise<ExitCode> {
  // --prefix: the fold of a node that watches only these prefixes (checked before any transfer).
  const scope: WatchScope | undefined =
    opts.prefix && opts.prefix.length > 0 ? { kind: "prefixes", prefixes: opts.prefix } : undefined;
  await checkDestination(dest);
  const settings = await loadTrust(opts, io.env);
  const t = await openTransportUrl(url, io.env, { timeoutMs: opts.timeoutMs });
  const entry = await pickArtifact(t, opts.key, {
    timeoutMs: opts.timeoutMs,
    trust: settings.trust,
    ...(io.signal ? { signal: io.signal } : {}),
  });
  const manifest = entry.pointer?.manifest;
  if (!manifest) {
    throw new CliError(
      EXIT.PROBLEM,
      "ARTIFACT_INVALID",
      `the pointer of ${entry.key} is unreadable: ${entry.pointer?.problem ?? "unknown"}`,
    );
  }
  if (manifest.backend !== BACKEND_ID) {
    throw new CliError(
      EXIT.INPUT,
      "UNSUPPORTED_BACKEND",
      `artifact ${entry.key} is a ${JSON.stringify(manifest.backend)} fold; this CLI imports ${BACKEND_ID} folds`,
    );
  }
  // A partial artifact that does not cover the fold asked for is refused before any transfer.
  assertScopeCovers(manifest.scope, resolveImportScope(scope), `artifact ${entry.key}`);
  const bar = progressBar(io, opts.progress !== false && !opts.json);
  const started = Date.now();
  let downloaded = 0;
  const signal = io.signal;
  try {
    const store = await importRemote({
      // The transport enforces the trust policy on the pointer it downloads (the catalog's
      // verdict above is only for the report).
      transport: t.transport(opts.timeoutMs, settings),
      key: entry.key,
      // Beside the destination: same filesystem, so the final rename is atomic.
      scratchDir: dirname(resolve(dest)),
      destDir: dest,
      ...(scope ? { scope } : {}),
      open: (artifactDir, destDir, hints) =>
        LevelSnapshotStore.import(artifactDir, destDir, {
          onProgress: bar.onProgress,
          ...(signal ? { signal } : {}),
          ...(hints.scope ? { scope: hints.scope } : {}),
        }),
      onProgress: (p) => {
        if (p.phase === "download") downloaded = p.bytesDone;
        bar.onProgress(p);
      },
      ...(signal ? { signal } : {}),
    });
    bar.stop();
    try {
      const stats = await store.stats();
      const ms = Date.now() - started;
      const report = {
        source: `${t.display} key ${entry.key}`,
        destination: store.directory,
        cursor: { revision: stats.cursor.isNone ? null : cursorRank(stats.cursor), hex: stats.cursor.toHex() },
        entries: stats.entries,
        scope: store.scope ?? null,
        signature: signatureJson(entry.pointer?.signature),
        encryption: encryptionJson(manifest),
        downloadedBytes: downloaded,
        durationMs: ms,
        bytesPerSecond: ms > 0 ? Math.round((downloaded / ms) * 1000) : null,
      };
      if (opts.json) printJson(io, report);
      else {
        printFields(io, [
          ["pulled", report.source],
          ["into", report.destination],
          ["cursor", `${report.cursor.revision ?? "none"} (resume the watch from here)`],
          ["entries", String(report.entries)],
          ...(store.scope !== undefined ? ([["scope", `partial: ${describeScope(store.scope)}`]] as const) : []),
          ["signature", describeSignature(report.signature)],
          ["encryption", describeEncryption(report.encryption)],
          [
            "transfer",
            `${formatBytes(downloaded)} in ${formatDuration(ms)}${report.bytesPerSecond ? ` (${formatBytes(report.bytesPerSecond)}/s)` : ""}, verified`,
          ],
        ]);
      }
      return EXIT.OK;
    } finally {
      await store.close();
    }
  } finally {
    bar.stop();
  }
}
