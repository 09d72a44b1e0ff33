/**
 * Trust and decryption settings of the CLI: `--trusted-key <file>` (repeatable: an Ed25519
 * public key in PEM, optionally `<file>@<notAfter ISO date>`), `--allow-unsigned`, and the
 * fleet key in `SLIPSTREAM_FLEET_KEY` (base64 of 32 bytes) for encrypted artifacts.
 */
import { readFile } from "node:fs/promises";
import {
  type ArtifactEncryption,
  type ExportManifest,
  publicKeyId,
  type SignatureCheck,
  type TrustedKey,
  type TrustPolicy,
} from "@slipstream/core";
import { type KeyWrapper, symmetricKeyWrapper } from "@slipstream/transport";
import { type Command, Option } from "commander";
import { CliError, EXIT, usage } from "./exit.js";

/** The environment variable holding the fleet key (base64 of 32 bytes). */
export const FLEET_KEY_ENV = "SLIPSTREAM_FLEET_KEY";

/** The trust options a command accepts. */
export interface TrustFlags {
  trustedKey?: string[];
  allowUnsigned?: boolean;
}

/** Adds `--trusted-key` and `--allow-unsigned` to `cmd`. */
export function trustOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        "--trusted-key <file>",
        "an Ed25519 public key (PEM) whose signatures are trusted; repeat for several (key rotation); append @<ISO date> for its expiry",
      ).argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]),
    )
    .option("--allow-unsigned", "with --trusted-key: also accept artifacts that carry no signature");
}

/** What the CLI trusts and can decrypt, from its flags and environment. */
export interface TrustSettings {
  readonly trust: TrustPolicy | undefined;
  readonly keyWrapper: KeyWrapper | undefined;
}

/** Reads the key files named by the flags and the fleet key from `env`. */
export async function loadTrust(
  flags: TrustFlags,
  env: Readonly<Record<string, string | undefined>>,
): Promise<TrustSettings> {
  const keys: TrustedKey[] = [];
  for (const spec of flags.trustedKey ?? []) {
    const at = spec.lastIndexOf("@");
    const file = at > 0 ? spec.slice(0, at) : spec;
    const notAfter = at > 0 ? new Date(spec.slice(at + 1)) : undefined;
    if (notAfter && Number.isNaN(notAfter.getTime())) throw usage(`--trusted-key ${spec}: not an ISO date after @`);
    const pem = await readFile(file, "utf8").catch((err: unknown) => {
      throw new CliError(EXIT.INPUT, "NOT_FOUND", `--trusted-key ${file}: ${(err as Error).message}`);
    });
    try {
      publicKeyId(pem);
    } catch (err) {
      throw usage(`--trusted-key ${file}: ${(err as Error).message}`);
    }
    keys.push({ publicKey: pem, ...(notAfter ? { notAfter } : {}), name: file });
  }
  if (flags.allowUnsigned && keys.length === 0) throw usage("--allow-unsigned needs at least one --trusted-key");
  let keyWrapper: KeyWrapper | undefined;
  const fleet = env[FLEET_KEY_ENV];
  if (fleet) {
    const bytes = Buffer.from(fleet, "base64");
    if (bytes.byteLength !== 32) throw usage(`${FLEET_KEY_ENV} must be base64 of 32 bytes`);
    keyWrapper = symmetricKeyWrapper(bytes);
  }
  return {
    trust: keys.length > 0 ? { keys, allowUnsigned: flags.allowUnsigned === true } : undefined,
    keyWrapper,
  };
}

/** JSON shape of a signature verdict. */
export function signatureJson(check: SignatureCheck | undefined): {
  status: string;
  keyId: string | null;
  message: string | null;
} | null {
  if (!check) return null;
  return {
    status: check.status,
    keyId: "keyId" in check ? check.keyId : null,
    message: "message" in check ? check.message : null,
  };
}

/** One line describing a signature verdict (as {@link signatureJson} gives it). */
export function describeSignature(s: ReturnType<typeof signatureJson>): string {
  if (!s) return "unknown (manifest unreadable)";
  if (s.status === "verified") return `verified, key ${s.keyId}`;
  if (s.status === "unsigned") return "none (unsigned)";
  if (s.status === "unchecked") return `signed by key ${s.keyId}, not checked (no --trusted-key)`;
  return `${s.status.toUpperCase()}, key ${s.keyId}: ${s.message}`;
}

/** JSON shape of a manifest's encryption block. */
export function encryptionJson(m: ExportManifest | undefined): { algorithm: string; keyId: string } | null {
  const e: ArtifactEncryption | undefined = m?.encryption;
  return e ? { algorithm: e.algorithm, keyId: e.keyId } : null;
}

/** One line describing a manifest's encryption (as {@link encryptionJson} gives it). */
export function describeEncryption(e: ReturnType<typeof encryptionJson>): string {
  return e ? `${e.algorithm} at rest (the remote payload), data key wrapped for ${e.keyId}` : "none";
}
