/**
 * Artifact signatures: the exporter signs the canonical manifest (Ed25519, node:crypto) and
 * importers accept only manifests signed by keys they trust. The manifest holds every
 * file's SHA-256 (and every chunk's), so the signature covers the whole artifact.
 *
 * What is signed: `SIGNING_CONTEXT` followed by the canonical encoding of the manifest
 * without its `signature` field. A signed manifest must itself be canonical (its bytes equal
 * the canonical encoding of what they parse to), so there is exactly one byte string per
 * signed manifest and re-encoding tricks cannot pass.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify } from "node:crypto";
import { SlipstreamError } from "./errors.js";
import { encodeManifest } from "./manifest.js";
import type { ExportManifest } from "./types.js";

/** Domain separation: these bytes prefix every signed message, so a signature over a manifest is never valid for anything else. */
export const SIGNING_CONTEXT = "slipstream-manifest-signature-v1\n";

/** An Ed25519 public key: a KeyObject, PEM/DER-SPKI text, or the raw 32 bytes. */
export type PublicKeyInput = KeyObject | string | Uint8Array;
/** An Ed25519 private key: a KeyObject or PEM (PKCS#8) text. */
export type PrivateKeyInput = KeyObject | string;

/** One key an importer trusts. */
export interface TrustedKey {
  /** The Ed25519 public key. */
  readonly publicKey: PublicKeyInput;
  /**
   * The key's expiry. An artifact is refused with `SIGNER_EXPIRED` when the importer's clock
   * is past it, or when the artifact's `createdAt` is (the signed `createdAt` alone is not
   * enough: a stolen old key could backdate it, so the clock decides too).
   */
  readonly notAfter?: Date;
  /** A label for logs and the CLI. */
  readonly name?: string;
}

/**
 * What an importer trusts. Several keys at once make rotation possible: trust old and new,
 * switch the exporters to the new key, then drop the old one (or let its `notAfter` pass).
 */
export interface TrustPolicy {
  /** Trusted signing keys (at least one). */
  readonly keys: readonly TrustedKey[];
  /**
   * Accept artifacts without any signature (old exports, or a fleet migrating to signing).
   * A present but bad signature is refused regardless.
   * @defaultValue false
   */
  readonly allowUnsigned?: boolean;
  /** The clock for expiry. @defaultValue `() => new Date()` */
  readonly now?: () => Date;
}

/** What {@link checkManifestSignature} found. */
export type SignatureCheck =
  | { readonly status: "verified"; readonly keyId: string; readonly keyName: string | undefined }
  | { readonly status: "unsigned" }
  /** Signed, but not checked: no trust policy was given. */
  | { readonly status: "unchecked"; readonly keyId: string }
  | {
      readonly status: "invalid" | "untrusted" | "expired";
      readonly keyId: string;
      readonly message: string;
    };

function rawEd25519(key: KeyObject): Buffer {
  if (key.asymmetricKeyType !== "ed25519") {
    throw new SlipstreamError("INVALID_ARGUMENT", `expected an Ed25519 key, got ${key.asymmetricKeyType ?? key.type}`);
  }
  const jwk = key.export({ format: "jwk" }) as { x?: string };
  if (typeof jwk.x !== "string") throw new SlipstreamError("INVALID_ARGUMENT", "the key has no Ed25519 public part");
  return Buffer.from(jwk.x, "base64url");
}

/** Parses a public key input into an Ed25519 KeyObject; anything else is `INVALID_ARGUMENT`. */
export function toPublicKey(input: PublicKeyInput): KeyObject {
  let key: KeyObject;
  try {
    if (typeof input === "string") key = createPublicKey(input);
    else if (input instanceof Uint8Array) {
      if (input.byteLength !== 32) throw new Error(`a raw Ed25519 public key is 32 bytes, not ${input.byteLength}`);
      key = createPublicKey({
        key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(input).toString("base64url") },
        format: "jwk",
      });
    } else key = input.type === "private" ? createPublicKey(input) : input;
  } catch (err) {
    throw SlipstreamError.wrap(err, "INVALID_ARGUMENT", "unreadable Ed25519 public key");
  }
  rawEd25519(key);
  return key;
}

/** The key id of a public key: the first 16 hex digits of SHA-256 of its raw 32 bytes. */
export function publicKeyId(input: PublicKeyInput): string {
  return createHash("sha256")
    .update(rawEd25519(toPublicKey(input)))
    .digest("hex")
    .slice(0, 16);
}

/** An exporter's signing key, parsed once. */
export interface ManifestSigner {
  /** The key id written into signatures. */
  readonly keyId: string;
  /** The public half, to hand to importers. */
  readonly publicKey: KeyObject;
  /** Returns `manifest` with a fresh `signature` (any previous one is replaced). */
  sign(manifest: ExportManifest): ExportManifest;
}

/** The exact bytes a signature covers (context + canonical manifest without `signature`). */
export function manifestSigningBytes(manifest: ExportManifest): Buffer {
  const { signature: _ignored, ...unsigned } = manifest;
  return Buffer.from(SIGNING_CONTEXT + encodeManifest(unsigned));
}

/** Builds a {@link ManifestSigner} from an Ed25519 private key (`INVALID_ARGUMENT` otherwise). */
export function manifestSigner(privateKey: PrivateKeyInput): ManifestSigner {
  let key: KeyObject;
  try {
    key = typeof privateKey === "string" ? createPrivateKey(privateKey) : privateKey;
    if (key.type !== "private") throw new Error("not a private key");
  } catch (err) {
    throw SlipstreamError.wrap(err, "INVALID_ARGUMENT", "unreadable Ed25519 private key");
  }
  const publicKey = toPublicKey(createPublicKey(key));
  const keyId = publicKeyId(publicKey);
  return {
    keyId,
    publicKey,
    sign(manifest) {
      const value = sign(null, manifestSigningBytes(manifest), key).toString("base64");
      return { ...manifest, signature: { algorithm: "ed25519", keyId, value } };
    },
  };
}

/**
 * Checks the signature of a manifest read as `bytes` (parsed to `manifest`) against
 * `policy`, without throwing for a bad artifact: the verdict is a value (the CLI shows
 * it). Without a policy a signed manifest is `unchecked`.
 */
export function checkManifestSignature(
  bytes: Uint8Array,
  manifest: ExportManifest,
  policy?: TrustPolicy,
): SignatureCheck {
  const sig = manifest.signature;
  if (!sig) return { status: "unsigned" };
  if (!policy) return { status: "unchecked", keyId: sig.keyId };
  const keyId = sig.keyId;
  const trusted = policy.keys.find((k) => publicKeyId(k.publicKey) === keyId);
  if (!trusted) {
    return {
      status: "untrusted",
      keyId,
      message: `artifact is signed by key ${keyId}, which is not trusted here (trusted: ${policy.keys.map((k) => publicKeyId(k.publicKey)).join(", ") || "none"})`,
    };
  }
  // One byte string per signed manifest: refuse anything but the canonical encoding.
  const canonical = Buffer.from(encodeManifest(manifest));
  if (!canonical.equals(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))) {
    return { status: "invalid", keyId, message: "signed manifest is not in canonical form (its bytes were altered)" };
  }
  let ok = false;
  try {
    ok = verify(null, manifestSigningBytes(manifest), toPublicKey(trusted.publicKey), Buffer.from(sig.value, "base64"));
  } catch {
    ok = false;
  }
  if (!ok)
    return { status: "invalid", keyId, message: `signature by key ${keyId} does not verify: the manifest was changed` };
  if (trusted.notAfter) {
    const now = (policy.now ?? (() => new Date()))();
    const limit = trusted.notAfter.getTime();
    if (now.getTime() > limit || manifest.createdAt.getTime() > limit) {
      return {
        status: "expired",
        keyId,
        message: `artifact is signed by key ${keyId}${trusted.name ? ` (${trusted.name})` : ""}, which expired at ${trusted.notAfter.toISOString()}`,
      };
    }
  }
  return { status: "verified", keyId, keyName: trusted.name };
}

/**
 * Enforces `policy` on a manifest read as `bytes`: returns the verdict when acceptable,
 * otherwise throws `ARTIFACT_UNSIGNED`, `SIGNATURE_INVALID`, `SIGNER_UNTRUSTED` or
 * `SIGNER_EXPIRED`. Without a policy everything is accepted (the behaviour of importers
 * that predate signing).
 */
export function assertManifestTrusted(
  bytes: Uint8Array,
  manifest: ExportManifest,
  policy: TrustPolicy | undefined,
): SignatureCheck {
  const check = checkManifestSignature(bytes, manifest, policy);
  switch (check.status) {
    case "verified":
    case "unchecked":
      return check;
    case "unsigned":
      if (!policy || policy.allowUnsigned === true) return check;
      throw new SlipstreamError(
        "ARTIFACT_UNSIGNED",
        "artifact is not signed and this importer requires a signature (set allowUnsigned to accept unsigned artifacts)",
      );
    case "invalid":
      throw new SlipstreamError("SIGNATURE_INVALID", check.message);
    case "untrusted":
      throw new SlipstreamError("SIGNER_UNTRUSTED", check.message);
    case "expired":
      throw new SlipstreamError("SIGNER_EXPIRED", check.message);
  }
}

/** Checks a trust policy's shape once (at construction); `INVALID_ARGUMENT` otherwise. */
export function validateTrustPolicy(policy: TrustPolicy): void {
  if (!Array.isArray(policy.keys) || policy.keys.length === 0) {
    throw new SlipstreamError("INVALID_ARGUMENT", "a trust policy needs at least one trusted key");
  }
  for (const k of policy.keys) {
    publicKeyId(k.publicKey);
    if (k.notAfter !== undefined && !(k.notAfter instanceof Date && !Number.isNaN(k.notAfter.getTime()))) {
      throw new SlipstreamError("INVALID_ARGUMENT", "notAfter must be a valid Date");
    }
  }
}
