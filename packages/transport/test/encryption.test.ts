import { randomBytes } from "node:crypto";
import { SlipstreamError } from "@slipstream/core";
import { describe, expect, it } from "vitest";
import { chunkNonce, decryptChunk, encryptChunk, newArtifactKey, unwrapArtifactKey } from "../src/encryption.js";
import { symmetricKeyWrapper } from "../src/index.js";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return SlipstreamError.is(err) ? err.code : String(err);
  }
  return undefined;
}

describe("chunk encryption", () => {
  it("seals each chunk under its own nonce; a chunk moved to another index or altered fails", () => {
    const key = randomBytes(32);
    const salt = randomBytes(12).toString("hex");
    const nonces = new Set(Array.from({ length: 1000 }, (_, i) => chunkNonce(salt, i).toString("hex")));
    expect(nonces.size).toBe(1000);
    const plain = randomBytes(5000);
    const sealed = encryptChunk(key, salt, 7, plain);
    expect(sealed.byteLength).toBe(plain.byteLength + 16);
    expect(decryptChunk(key, salt, 7, sealed).equals(plain)).toBe(true);
    expect(codeOf(() => decryptChunk(key, salt, 8, sealed))).toBe("DECRYPTION_FAILED");
    const altered = Buffer.from(sealed);
    altered[10] = (altered[10] as number) ^ 1;
    expect(codeOf(() => decryptChunk(key, salt, 7, altered))).toBe("DECRYPTION_FAILED");
    expect(codeOf(() => decryptChunk(randomBytes(32), salt, 7, sealed))).toBe("DECRYPTION_FAILED");
  });

  it("wraps data keys for the fleet; the wrong fleet key or none is DECRYPTION_FAILED", async () => {
    const fleet = symmetricKeyWrapper(randomBytes(32));
    expect(fleet.keyId).toMatch(/^fleet-[0-9a-f]{16}$/);
    const { dataKey, encryption } = await newArtifactKey(fleet);
    expect((await unwrapArtifactKey(fleet, encryption)).equals(dataKey)).toBe(true);
    const code = async (p: Promise<unknown>) =>
      p.then(
        () => "resolved",
        (err: unknown) => (SlipstreamError.is(err) ? err.code : String(err)),
      );
    expect(await code(unwrapArtifactKey(symmetricKeyWrapper(randomBytes(32)), encryption))).toBe("DECRYPTION_FAILED");
    expect(await code(unwrapArtifactKey(symmetricKeyWrapper(randomBytes(32), fleet.keyId), encryption))).toBe(
      "DECRYPTION_FAILED",
    );
    expect(await code(unwrapArtifactKey(undefined, encryption))).toBe("DECRYPTION_FAILED");
    expect(codeOf(() => symmetricKeyWrapper(randomBytes(16)))).toBe("INVALID_ARGUMENT");
  });
});
