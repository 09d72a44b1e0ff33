import { cursorRank, describeScope } from "@slipstream/core";
import { describeArtifacts } from "@slipstream/transport";
import { EXIT, type ExitCode } from "../exit.js";
import { type CliIo, formatBytes, formatDuration, printJson, println } from "../output.js";
import { openTransportUrl } from "../transport-url.js";
import {
  describeEncryption,
  describeSignature,
  encryptionJson,
  loadTrust,
  signatureJson,
  type TrustFlags,
} from "../trust.js";

/** `artifacts <transportUrl>`: every pointer, the payloads kept, and what prune would remove. */
export async function artifactsCommand(
  io: CliIo,
  url: string,
  opts: { json?: boolean; key?: string; graceMs: number; timeoutMs: number } & TrustFlags,
): Promise<ExitCode> {
  const { trust } = await loadTrust(opts, io.env);
  const t = await openTransportUrl(url, io.env, { timeoutMs: opts.timeoutMs });
  const entries = await describeArtifacts(t.store, {
    prefix: t.prefix,
    ...(trust ? { trust } : {}),
    graceMs: opts.graceMs,
    timeoutMs: opts.timeoutMs,
    ...(opts.key !== undefined ? { key: opts.key } : {}),
    ...(io.signal ? { signal: io.signal } : {}),
  });
  const out = entries.map((e) => {
    const m = e.pointer?.manifest;
    return {
      key: e.key,
      pointer: e.pointer
        ? {
            object: e.pointerKey,
            publishedAt: e.pointer.lastModified.toISOString(),
            readable: m !== undefined,
            problem: e.pointer.problem ?? null,
            cursor: m ? { revision: m.cursor.isNone ? null : cursorRank(m.cursor), hex: m.cursor.toHex() } : null,
            createdAt: m?.createdAt.toISOString() ?? null,
            // The key prefixes a partial artifact holds; null = the whole bucket (or unreadable).
            scope: m?.scope ?? null,
            backend: m ? `${m.backend}/${m.backendVersion}` : null,
            files: m?.files.length ?? null,
            declaredBytes: e.declaredBytes ?? null,
            // Who exported, as the manifest records it (optional: older exporters set none).
            exporter: e.pointer.exporter ?? null,
            payload: e.pointer.payloadKey ?? null,
            signature: signatureJson(e.pointer.signature),
            encryption: encryptionJson(m),
            chunkSize: m?.chunkSize ?? null,
          }
        : null,
      danglingPointer: e.danglingPointer,
      payloads: e.payloads.map((p) => ({
        object: p.objectKey,
        size: p.size,
        lastModified: p.lastModified.toISOString(),
        rank: p.rank ?? null,
        current: p.current,
        prunable: p.prunable,
      })),
      prunable: e.payloads.filter((p) => p.prunable).map((p) => p.objectKey),
    };
  });
  if (opts.json) {
    printJson(io, { transport: t.display, graceMs: opts.graceMs, artifacts: out });
    return EXIT.OK;
  }
  if (out.length === 0) {
    println(io, `no artifacts at ${t.display}`);
    return EXIT.OK;
  }
  for (const a of out) {
    println(io, `artifact ${a.key}`);
    const p = a.pointer;
    if (!p) println(io, "  pointer    none (payloads without a published pointer)");
    else if (!p.readable) println(io, `  pointer    UNREADABLE: ${p.problem}`);
    else {
      println(io, `  cursor     ${p.cursor?.revision ?? "none"} (created ${p.createdAt}, published ${p.publishedAt})`);
      println(
        io,
        `  payload    ${p.backend}, ${p.files} files, ${formatBytes(p.declaredBytes ?? 0)}${a.danglingPointer ? "  MISSING: the pointer names a payload that is not in the store" : ""}`,
      );
      if (p.scope !== null) println(io, `  scope      partial: ${describeScope(p.scope)}`);
      println(io, `  exporter   ${p.exporter ?? "not recorded"}`);
      println(io, `  signature  ${describeSignature(p.signature)}`);
      println(io, `  encryption ${describeEncryption(p.encryption)}`);
    }
    println(
      io,
      `  payloads   ${a.payloads.length} kept, ${a.prunable.length} prunable now (grace ${formatDuration(opts.graceMs)})`,
    );
    for (const x of a.payloads) {
      const mark = x.current ? "current" : x.prunable ? "prune" : "keep";
      println(
        io,
        `    ${mark.padEnd(7)} rank ${String(x.rank ?? "?").padEnd(8)} ${formatBytes(x.size).padStart(10)}  ${x.lastModified}  ${x.object}`,
      );
    }
  }
  return EXIT.OK;
}
