import { cursorRank, describeScope } from "@slipstream/core";
import { EXIT, type ExitCode } from "../exit.js";
import { foldDirFacts, openExistingFold } from "../fold.js";
import { type CliIo, formatBytes, formatRevision, printFields, printJson } from "../output.js";

/** `inspect <foldDir>`: backend, format, cursor, key count, size on disk, last commit time. */
export async function inspectCommand(io: CliIo, dir: string, opts: { json?: boolean }): Promise<ExitCode> {
  // Measured before opening: LevelDB rotates its log files on open.
  const facts = await foldDirFacts(dir);
  const store = await openExistingFold(dir);
  try {
    const stats = await store.stats();
    const cursor = stats.cursor;
    const report = {
      directory: store.directory,
      backend: store.backend,
      formatGeneration: stats.formatGeneration,
      cursor: { revision: cursor.isNone ? null : cursorRank(cursor), hex: cursor.toHex(), none: cursor.isNone },
      entries: stats.entries,
      // The prefixes a fold imported for a narrower scope holds; null = the whole bucket.
      scope: store.scope ?? null,
      sizeOnDisk: facts.sizeOnDisk,
      files: facts.files,
      approximateDataBytes: stats.approximateBytes,
      lastCommit: facts.lastWrite?.toISOString() ?? null,
    };
    if (opts.json) printJson(io, report);
    else {
      printFields(io, [
        ["fold", report.directory],
        ["backend", `${report.backend} (format generation ${report.formatGeneration})`],
        [
          "cursor",
          cursor.isNone
            ? "none (nothing applied yet)"
            : `${formatRevision(cursorRank(cursor))} (hex ${cursor.toHex()})`,
        ],
        ["entries", String(report.entries)],
        ...(store.scope !== undefined ? ([["scope", `partial: ${describeScope(store.scope)}`]] as const) : []),
        ["size on disk", `${formatBytes(report.sizeOnDisk)} in ${report.files} files`],
        ["last commit", report.lastCommit ?? "unknown"],
      ]);
    }
    return EXIT.OK;
  } finally {
    await store.close();
  }
}
