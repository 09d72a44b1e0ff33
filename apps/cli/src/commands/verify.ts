import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ArtifactVerification,
  cursorRank,
  describeScope,
  type ExportManifest,
  isArtifactRefusal,
  SlipstreamError,
  TEMP_PREFIX,
  verifyArtifact,
} from "@slipstream/core";
import { BACKEND_ID, LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { CliError, EXIT, type ExitCode } from "../exit.js";
import { type CliIo, formatBytes, printFields, printJson, println } from "../output.js";
import { progressBar } from "../progress.js";
import { pickArtifact } from "../remote.js";
import { isUrl, openTransportUrl } from "../transport-url.js";
import {
  describeEncryption,
  describeSignature,
  encryptionJson,
  loadTrust,
  signatureJson,
  type TrustFlags,
} from "../trust.js";

/** A defect: the core kinds, plus "download" (the transport refused it) and "import" (--deep). */
interface Problem {
  kind: string;
  path?: string;
  message: string;
}

interface VerifyOpts extends TrustFlags {
  json?: boolean;
  key?: string;
  deep?: boolean;
  progress?: boolean;
  timeoutMs: number;
}

/** Imports the artifact into a scratch fold through the backend and removes it: the payload must open with the manifest's cursor. */
async function deepCheck(io: CliIo, dir: string, manifest: ExportManifest): Promise<Problem | undefined> {
  if (manifest.backend !== BACKEND_ID) {
    return {
      kind: "import",
      message: `--deep cannot open backend ${JSON.stringify(manifest.backend)} (this CLI opens ${BACKEND_ID})`,
    };
  }
  const scratch = await mkdtemp(join(tmpdir(), TEMP_PREFIX.import));
  try {
    // A partial artifact opens for its own scope (an import defaults to the whole bucket).
    const store = await LevelSnapshotStore.import(dir, join(scratch, "fold"), {
      ...(io.signal ? { signal: io.signal } : {}),
      ...(manifest.scope !== undefined ? { scope: { kind: "prefixes", prefixes: manifest.scope } } : {}),
    });
    await store.close();
    return undefined;
  } catch (err) {
    if (SlipstreamError.is(err, "ARTIFACT_INVALID")) return { kind: "import", message: err.message };
    throw err;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

function report(source: string, v: ArtifactVerification, extra: Problem[]) {
  const problems: Problem[] = [...v.problems, ...extra];
  const m = v.manifest;
  return {
    source,
    ok: problems.length === 0,
    manifest: m
      ? {
          schemaVersion: m.schemaVersion,
          backend: m.backend,
          backendVersion: m.backendVersion,
          cursor: { revision: m.cursor.isNone ? null : cursorRank(m.cursor), hex: m.cursor.toHex() },
          // The key prefixes a partial artifact holds; null = the whole bucket.
          scope: m.scope ?? null,
          createdAt: m.createdAt.toISOString(),
          exporter: m.exporter ?? null,
          files: m.files.length,
          bytes: m.files.reduce((n, f) => n + f.size, 0),
        }
      : null,
    signature: signatureJson(v.signature),
    encryption: encryptionJson(m),
    files: v.files,
    problems,
  };
}

/** `verify <artifactDir>` or `verify <transportUrl> [--key K]`. */
export async function verifyCommand(
  io: CliIo,
  target: string,
  keyArg: string | undefined,
  opts: VerifyOpts,
): Promise<ExitCode> {
  const settings = await loadTrust(opts, io.env);
  const bar = progressBar(io, opts.progress !== false && !opts.json);
  try {
    let source = target;
    let result: ReturnType<typeof report>;
    if (isUrl(target)) {
      const t = await openTransportUrl(target, io.env, { timeoutMs: opts.timeoutMs });
      const key = keyArg ?? opts.key;
      const entry = await pickArtifact(t, key, {
        timeoutMs: opts.timeoutMs,
        trust: settings.trust,
        ...(io.signal ? { signal: io.signal } : {}),
      });
      source = `${t.display} key ${entry.key}`;
      const scratch = await mkdtemp(join(tmpdir(), TEMP_PREFIX.download));
      try {
        const dir = join(scratch, "artifact");
        try {
          await t.transport(opts.timeoutMs, settings).download(entry.key, dir, {
            onProgress: bar.onProgress,
            ...(io.signal ? { signal: io.signal } : {}),
          });
        } catch (err) {
          if (!isArtifactRefusal(err)) throw err;
          const v: ArtifactVerification = {
            ok: false,
            manifest: entry.pointer?.manifest,
            manifestBytes: undefined,
            files: [],
            problems: [],
            bytesChecked: 0,
            signature: entry.pointer?.signature,
          };
          const kind = err.code === "ARTIFACT_INVALID" || err.code === "CHUNK_CORRUPTED" ? "download" : "signature";
          result = report(source, v, [{ kind, message: `${err.code}: ${err.message}` }]);
          return finish(io, result, opts);
        }
        const v = await verifyArtifact(dir, {
          ...(settings.trust ? { trust: settings.trust } : {}),
          onProgress: bar.onProgress,
          ...(io.signal ? { signal: io.signal } : {}),
        });
        const extra =
          opts.deep && v.ok && v.manifest ? [await deepCheck(io, dir, v.manifest)].filter((p) => p !== undefined) : [];
        result = report(source, v, extra as Problem[]);
      } finally {
        await rm(scratch, { recursive: true, force: true });
      }
    } else {
      const st = await stat(target).catch(() => undefined);
      if (!st) throw new CliError(EXIT.INPUT, "NOT_FOUND", `artifact directory ${target} does not exist`);
      if (!st.isDirectory())
        throw new CliError(EXIT.INPUT, "NOT_FOUND", `${target} is not a directory; an artifact is a directory`);
      const v = await verifyArtifact(target, {
        ...(settings.trust ? { trust: settings.trust } : {}),
        onProgress: bar.onProgress,
        ...(io.signal ? { signal: io.signal } : {}),
      });
      const extra =
        opts.deep && v.ok && v.manifest ? [await deepCheck(io, target, v.manifest)].filter((p) => p !== undefined) : [];
      result = report(source, v, extra as Problem[]);
    }
    return finish(io, result, opts);
  } finally {
    bar.stop();
  }
}

function finish(io: CliIo, r: ReturnType<typeof report>, opts: VerifyOpts): ExitCode {
  if (opts.json) printJson(io, r);
  else {
    const m = r.manifest;
    printFields(io, [
      ["artifact", r.source],
      ...(m
        ? ([
            ["backend", `${m.backend} (format ${m.backendVersion}, schema ${m.schemaVersion})`],
            ["cursor", m.cursor.revision === null ? "none" : `${m.cursor.revision} (hex ${m.cursor.hex})`],
            ...(m.scope !== null ? ([["scope", `partial: ${describeScope(m.scope)}`]] as const) : []),
            ["created", m.createdAt],
            ["exporter", m.exporter ?? "not recorded"],
            ["payload", `${m.files} files, ${formatBytes(m.bytes)}`],
          ] as const)
        : []),
      ["signature", describeSignature(r.signature)],
      ["encryption", describeEncryption(r.encryption)],
      [
        "verdict",
        r.ok
          ? `OK — every path, size and sha256 matches${opts.deep ? "; the payload opens at the manifest's cursor" : ""}`
          : `INVALID — ${r.problems.length} problem(s)`,
      ],
    ]);
    for (const p of r.problems) println(io, `  ✗ ${p.kind}${p.path ? ` ${p.path}` : ""}: ${p.message}`);
  }
  return r.ok ? EXIT.OK : EXIT.PROBLEM;
}
