import { EXIT, type ExitCode } from "../exit.js";
import { openExistingFold } from "../fold.js";
import { type CliIo, toJson } from "../output.js";

/** `ls <foldDir> [prefix] [--limit N]`: keys in byte order, streamed (bounded memory). */
export async function lsCommand(
  io: CliIo,
  dir: string,
  prefix: string,
  opts: { json?: boolean; limit?: number },
): Promise<ExitCode> {
  const store = await openExistingFold(dir);
  try {
    const limit = opts.limit ?? Number.POSITIVE_INFINITY;
    let n = 0;
    let truncated = false;
    if (opts.json) io.stdout.write(`{\n  "prefix": ${JSON.stringify(prefix)},\n  "entries": [`);
    for await (const e of store.range(prefix)) {
      if (n >= limit) {
        truncated = true;
        break;
      }
      const rev = e.version.revision;
      if (opts.json) {
        const item = toJson({ key: e.key, revision: rev ?? null, size: e.value.byteLength }).replace(/\n\s*/g, " ");
        io.stdout.write(`${n === 0 ? "\n" : ",\n"}    ${item}`);
      } else {
        io.stdout.write(`${e.key}\t${rev?.toString() ?? "?"}\t${e.value.byteLength}\n`);
      }
      n++;
    }
    if (opts.json) io.stdout.write(`${n > 0 ? "\n  " : ""}],\n  "count": ${n},\n  "truncated": ${truncated}\n}\n`);
    else if (truncated && io.isTTY) io.stderr.write(`(stopped at --limit ${limit})\n`);
    return EXIT.OK;
  } finally {
    await store.close();
  }
}
