import { cursorRank } from "@slipstream/core";
import { EXIT, type ExitCode } from "../exit.js";
import { openExistingFold } from "../fold.js";
import { type NatsFlags, openBucket } from "../nats.js";
import { type CliIo, printFields, printJson, println } from "../output.js";

interface Difference {
  key: string;
  foldRevision: bigint | null;
  bucketRevision: bigint | null;
  /** The bucket's revision is newer than the fold's cursor: the fold has simply not applied it yet. */
  pending: boolean;
}

/** `diff <foldDir> --nats URL --bucket NAME [--prefix P]`: missing, extra and stale keys. */
export async function diffCommand(
  io: CliIo,
  dir: string,
  opts: NatsFlags & { json?: boolean; prefix?: string; limit: number; timeoutMs: number },
): Promise<ExitCode> {
  const prefix = opts.prefix ?? "";
  const store = await openExistingFold(dir);
  try {
    const { conn, bucket } = await openBucket(opts, io.env, opts.timeoutMs, io.signal);
    try {
      const status = await bucket.status(io.signal ? { signal: io.signal } : {});
      // Keys and revisions of the live bucket (values are not kept).
      const live = new Map<string, bigint | undefined>();
      for await (const e of bucket.reader.scan(prefix, io.signal ? { signal: io.signal } : {})) {
        live.set(e.key, e.version.revision);
      }
      const cursor = store.cursor;
      const cursorRev = cursor.isNone ? 0n : cursorRank(cursor);
      const missing: Difference[] = [];
      const extra: Difference[] = [];
      const stale: Difference[] = [];
      let same = 0;
      let foldKeys = 0;
      for await (const e of store.range(prefix)) {
        foldKeys++;
        const foldRev = e.version.revision ?? null;
        if (!live.has(e.key)) {
          extra.push({ key: e.key, foldRevision: foldRev, bucketRevision: null, pending: false });
          continue;
        }
        const bucketRev = live.get(e.key) ?? null;
        live.delete(e.key);
        if (bucketRev === foldRev) same++;
        else
          stale.push({
            key: e.key,
            foldRevision: foldRev,
            bucketRevision: bucketRev,
            pending: bucketRev !== null && bucketRev > cursorRev,
          });
      }
      for (const [key, rev] of [...live].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        missing.push({
          key,
          foldRevision: null,
          bucketRevision: rev ?? null,
          pending: rev !== undefined && rev > cursorRev,
        });
      }
      const differ = missing.length + extra.length + stale.length > 0;
      const pending = [...missing, ...stale].filter((d) => d.pending).length;
      const report = {
        fold: store.directory,
        bucket: bucket.name,
        prefix,
        foldCursor: cursor.isNone ? null : cursorRev,
        bucketLastSeq: status.lastSeq,
        foldKeys,
        bucketKeys: same + stale.length + missing.length,
        same,
        differ,
        counts: { missing: missing.length, extra: extra.length, stale: stale.length, pending },
        missing: missing.slice(0, opts.limit),
        extra: extra.slice(0, opts.limit),
        stale: stale.slice(0, opts.limit),
        truncated: Math.max(missing.length, extra.length, stale.length) > opts.limit,
      };
      if (opts.json) printJson(io, report);
      else {
        printFields(io, [
          ["fold", `${report.fold} (cursor ${report.foldCursor ?? "none"}, ${foldKeys} keys)`],
          ["bucket", `${report.bucket} (last revision ${status.lastSeq}, ${report.bucketKeys} keys)`],
          ["prefix", prefix === "" ? "(all keys)" : prefix],
          [
            "verdict",
            differ
              ? `DIFFERENT — ${missing.length} missing, ${extra.length} extra, ${stale.length} stale`
              : `IN SYNC — ${same} keys at the same revision`,
          ],
        ]);
        if (pending > 0)
          println(
            io,
            `  ${pending} of the differences are revisions newer than the fold's cursor (not applied yet, not damage)`,
          );
        const show = (label: string, list: Difference[]) => {
          for (const d of list.slice(0, opts.limit)) {
            println(
              io,
              `  ${label.padEnd(7)} ${d.key}  fold ${d.foldRevision ?? "-"}  bucket ${d.bucketRevision ?? "-"}${d.pending ? "  (pending)" : ""}`,
            );
          }
        };
        show("missing", missing);
        show("extra", extra);
        show("stale", stale);
        if (report.truncated) println(io, `  (lists cut at --limit ${opts.limit})`);
      }
      return differ ? EXIT.PROBLEM : EXIT.OK;
    } finally {
      await conn.close();
    }
  } finally {
    await store.close();
  }
}
