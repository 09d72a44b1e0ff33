/**
 * Where a command writes, and how: human text (aligned fields, sizes and durations in
 * words) or one JSON document (`--json`; bigints as decimal strings, dates as ISO 8601).
 */
import type { Writable } from "node:stream";

/** The process surroundings a command runs in (injected, so tests run commands in-process). */
export interface CliIo {
  readonly stdout: Writable;
  readonly stderr: Writable;
  /** Environment variables (NATS_URL, AWS_*, AZURE_STORAGE_*). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** True when stderr is a terminal: progress bars are drawn only then. */
  readonly isTTY: boolean;
  /** Fires on Ctrl-C; long operations stop and the command exits 130. */
  readonly signal?: AbortSignal;
}

/** JSON with bigints as decimal strings and dates as ISO strings. */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v) => {
      if (typeof v === "bigint") return v.toString();
      if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
      return v;
    },
    2,
  );
}

/** Writes one JSON document and a newline to stdout. */
export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${toJson(value)}\n`);
}

/** Writes aligned `label  value` lines to stdout. */
export function printFields(io: CliIo, fields: ReadonlyArray<readonly [string, string]>): void {
  const width = Math.max(0, ...fields.map(([k]) => k.length));
  for (const [k, v] of fields) io.stdout.write(`${k.padEnd(width)}  ${v}\n`);
}

/** Writes one line to stdout. */
export function println(io: CliIo, line = ""): void {
  io.stdout.write(`${line}\n`);
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** 93_000 → "1m33s". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  const s = Math.round(ms / 1000);
  if (s < 60) return ms < 1000 ? `${Math.round(ms)}ms` : `${s}s`;
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  return `${m}m${sec}s`;
}

/** Parses "90s", "15m", "2h", "1d", "500ms" or plain milliseconds. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2] ?? "ms";
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit] as number;
  return n * factor;
}

/** A cursor for humans: "1234" or "none". */
export function formatRevision(rev: bigint | undefined): string {
  return rev === undefined ? "none" : rev.toString();
}
