// Packs the published workspace packages the way `pnpm publish` does (publishConfig
// applied, `workspace:` ranges replaced) and reads what a user would get.
import { execFile } from "node:child_process";
import { createReadStream, type Dirent, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { createGunzip } from "node:zlib";
import { repoRoot } from "@slipstream/testkit";
import * as tarStream from "tar-stream";

const run = promisify(execFile);

/** A published (non-private) package of a workspace. */
export interface WorkspacePackage {
  readonly name: string;
  readonly version: string;
  readonly dir: string;
  readonly manifest: Record<string, unknown>;
}

/** The non-private packages under `<root>/packages` and `<root>/apps`, sorted by name. */
export function publishedPackages(root = repoRoot()): WorkspacePackage[] {
  const out: WorkspacePackage[] = [];
  for (const group of ["packages", "apps"]) {
    let entries: Dirent[];
    try {
      entries = readdirSync(join(root, group), { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const dir = join(root, group, entry.name);
      let manifest: Record<string, unknown>;
      try {
        manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
      } catch {
        continue;
      }
      if (manifest.private === true) continue;
      out.push({ name: String(manifest.name), version: String(manifest.version), dir, manifest });
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** One packed package. */
export interface Packed {
  readonly name: string;
  readonly tarball: string;
  /** The package.json inside the tarball. */
  readonly manifest: Record<string, unknown>;
  /** Paths inside the tarball, without the leading `package/`. */
  readonly files: string[];
}

/** `pnpm pack` of one package directory into `dest`. */
export async function pack(pkg: WorkspacePackage, dest: string): Promise<Packed> {
  const { stdout } = await run("pnpm", ["pack", "--json", "--pack-destination", dest], {
    cwd: pkg.dir,
    maxBuffer: 64 * 1024 * 1024,
  });
  const info = JSON.parse(stdout) as { filename: string };
  const tarball = info.filename.startsWith("/") ? info.filename : join(dest, info.filename);
  const entries = await readTarGz(tarball);
  const manifestBytes = entries.get("package/package.json");
  if (!manifestBytes) throw new Error(`${tarball} has no package/package.json`);
  return {
    name: pkg.name,
    tarball,
    manifest: JSON.parse(manifestBytes.toString("utf8")),
    files: [...entries.keys()].map((p) => p.replace(/^package\//, "")).sort(),
  };
}

/** Packs every package, two at a time (pnpm pack is mostly I/O). */
export async function packAll(pkgs: readonly WorkspacePackage[], dest: string): Promise<Map<string, Packed>> {
  const out = new Map<string, Packed>();
  const queue = [...pkgs];
  const worker = async () => {
    for (let p = queue.shift(); p; p = queue.shift()) out.set(p.name, await pack(p, dest));
  };
  await Promise.all([worker(), worker()]);
  return out;
}

/** The regular files of a .tgz, path → bytes. */
export async function readTarGz(file: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const extract = tarStream.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on("entry", (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: unknown) => chunks.push(c as Buffer));
      stream.on("end", () => {
        if (header.type === "file") files.set(header.name, Buffer.concat(chunks));
        next();
      });
      stream.on("error", reject);
    });
    extract.on("finish", () => resolve());
    extract.on("error", reject);
  });
  await pipeline(createReadStream(file), createGunzip(), extract);
  await done;
  return files;
}
