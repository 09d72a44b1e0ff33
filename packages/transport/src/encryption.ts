/**
 * Encryption at rest of remote payloads: every chunk is sealed with AES-256-GCM under a
 * random per-artifact data key; the data key is wrapped for the fleet by a {@link KeyWrapper}
 * (a symmetric fleet key, or a KMS behind the same two calls) and stored in the manifest,
 * which stays readable. A chunk's nonce is the artifact's random 12-byte salt XOR the
 * chunk's index across the whole artifact, so no nonce repeats under a key.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { type ArtifactEncryption, SlipstreamError } from "@slipstream/core";

/** Bytes of the GCM tag appended to every encrypted chunk. */
export const GCM_TAG_BYTES = 16;
const DATA_KEY_BYTES = 32;
const NONCE_BYTES = 12;

/** Options of the {@link KeyWrapper} calls. */
export interface KeyWrapOptions {
  signal?: AbortSignal;
}

/**
 * Wraps and unwraps per-artifact data keys for a fleet. Implement it over a KMS (wrap =
 * Encrypt, unwrap = Decrypt) or use {@link symmetricKeyWrapper} with a key from the
 * environment. `unwrapKey` must throw (any error) for a key it cannot unwrap; the transport
 * reports that as `DECRYPTION_FAILED`.
 */
export interface KeyWrapper {
  /** Names the wrapping key; written into the manifest so importers can pick theirs. */
  readonly keyId: string;
  /** Wraps a 32-byte data key. */
  wrapKey(dataKey: Uint8Array, opts?: KeyWrapOptions): Promise<Uint8Array>;
  /** Unwraps what {@link KeyWrapper.wrapKey} returned (`keyId` is the manifest's). */
  unwrapKey(wrapped: Uint8Array, keyId: string, opts?: KeyWrapOptions): Promise<Uint8Array>;
}

/**
 * A {@link KeyWrapper} over one 32-byte symmetric fleet key (AES-256-GCM key wrap with a
 * random IV). Its key id is `fleet-` + the first 16 hex digits of SHA-256 of the key, unless
 * `keyId` is given. Applications read the key from their own configuration (e.g. an
 * environment variable holding base64); the library never reads the environment itself.
 */
export function symmetricKeyWrapper(fleetKey: Uint8Array, keyId?: string): KeyWrapper {
  if (!(fleetKey instanceof Uint8Array) || fleetKey.byteLength !== DATA_KEY_BYTES) {
    throw new SlipstreamError("INVALID_ARGUMENT", `a fleet key is ${DATA_KEY_BYTES} bytes`);
  }
  const key = Buffer.from(fleetKey);
  const id = keyId ?? `fleet-${createHash("sha256").update(key).digest("hex").slice(0, 16)}`;
  return {
    keyId: id,
    async wrapKey(dataKey) {
      const iv = randomBytes(NONCE_BYTES);
      const c = createCipheriv("aes-256-gcm", key, iv);
      const body = Buffer.concat([c.update(dataKey), c.final()]);
      return Buffer.concat([iv, body, c.getAuthTag()]);
    },
    async unwrapKey(wrapped, wrappedFor) {
      if (wrappedFor !== id) throw new Error(`the data key is wrapped for ${wrappedFor}; this key is ${id}`);
      const buf = Buffer.from(wrapped);
      if (buf.byteLength !== NONCE_BYTES + DATA_KEY_BYTES + GCM_TAG_BYTES)
        throw new Error("wrapped key has the wrong size");
      const d = createDecipheriv("aes-256-gcm", key, buf.subarray(0, NONCE_BYTES));
      d.setAuthTag(buf.subarray(buf.byteLength - GCM_TAG_BYTES));
      return Buffer.concat([d.update(buf.subarray(NONCE_BYTES, buf.byteLength - GCM_TAG_BYTES)), d.final()]);
    },
  };
}

/** A fresh data key, its wrapping and nonce salt for one artifact. */
export async function newArtifactKey(
  wrapper: KeyWrapper,
  opts: KeyWrapOptions = {},
): Promise<{ dataKey: Buffer; encryption: ArtifactEncryption }> {
  const dataKey = randomBytes(DATA_KEY_BYTES);
  const wrapped = await wrapper.wrapKey(dataKey, opts);
  return {
    dataKey,
    encryption: {
      algorithm: "aes-256-gcm",
      keyId: wrapper.keyId,
      wrappedKey: Buffer.from(wrapped).toString("base64"),
      nonceSalt: randomBytes(NONCE_BYTES).toString("hex"),
    },
  };
}

/** Unwraps an artifact's data key; any failure (no wrapper, wrong key, bad wrapping) is `DECRYPTION_FAILED`. */
export async function unwrapArtifactKey(
  wrapper: KeyWrapper | undefined,
  enc: ArtifactEncryption,
  opts: KeyWrapOptions = {},
): Promise<Buffer> {
  if (!wrapper) {
    throw new SlipstreamError(
      "DECRYPTION_FAILED",
      `artifact is encrypted for key ${enc.keyId} and no decryption key is configured`,
    );
  }
  let key: Uint8Array;
  try {
    key = await wrapper.unwrapKey(Buffer.from(enc.wrappedKey, "base64"), enc.keyId, opts);
  } catch (err) {
    if (SlipstreamError.is(err, "ABORTED") || SlipstreamError.is(err, "TIMEOUT")) throw err;
    throw SlipstreamError.wrap(err, "DECRYPTION_FAILED", `cannot unwrap the data key (wrapped for ${enc.keyId})`);
  }
  if (key.byteLength !== DATA_KEY_BYTES) {
    throw new SlipstreamError(
      "DECRYPTION_FAILED",
      `unwrapped data key is ${key.byteLength} bytes, not ${DATA_KEY_BYTES}`,
    );
  }
  return Buffer.from(key);
}

/** The nonce of chunk `index` (counted across the whole artifact). */
export function chunkNonce(nonceSalt: string, index: number): Buffer {
  const nonce = Buffer.from(nonceSalt, "hex");
  const ctr = Buffer.alloc(NONCE_BYTES);
  ctr.writeBigUInt64BE(BigInt(index), NONCE_BYTES - 8);
  for (let i = 0; i < NONCE_BYTES; i++) nonce[i] = (nonce[i] as number) ^ (ctr[i] as number);
  return nonce;
}

/** Encrypts one plaintext chunk: ciphertext followed by the 16-byte tag. */
export function encryptChunk(dataKey: Buffer, nonceSalt: string, index: number, plain: Uint8Array): Buffer {
  const c = createCipheriv("aes-256-gcm", dataKey, chunkNonce(nonceSalt, index));
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

/** Decrypts one stored chunk (ciphertext + tag); a failed tag is `DECRYPTION_FAILED`. */
export function decryptChunk(dataKey: Buffer, nonceSalt: string, index: number, stored: Uint8Array): Buffer {
  const buf = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  if (buf.byteLength < GCM_TAG_BYTES) throw new SlipstreamError("DECRYPTION_FAILED", `chunk ${index} is too short`);
  try {
    const d = createDecipheriv("aes-256-gcm", dataKey, chunkNonce(nonceSalt, index));
    d.setAuthTag(buf.subarray(buf.byteLength - GCM_TAG_BYTES));
    return Buffer.concat([d.update(buf.subarray(0, buf.byteLength - GCM_TAG_BYTES)), d.final()]);
  } catch (err) {
    throw SlipstreamError.wrap(err, "DECRYPTION_FAILED", `chunk ${index} fails authentication`);
  }
}
