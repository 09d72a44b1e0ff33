import { generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes } from "node:crypto";
import { join } from "node:path";
import { hashFile, SlipstreamError } from "@slipstream/core";
import { tempDir } from "@slipstream/testkit";
import { ArtifactTransport, type KeyWrapper, makeTestArtifact } from "@slipstream/transport";
import { describe, expect, it } from "vitest";
import { FsBlobStore } from "../src/index.js";

/** A stand-in for a KMS: data keys are wrapped with RSA-OAEP; only the holder of the private key unwraps. */
function rsaKms(keyId: string) {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const calls: string[] = [];
  const wrapper: KeyWrapper = {
    keyId,
    async wrapKey(dataKey) {
      calls.push("wrap");
      return publicEncrypt(publicKey, dataKey);
    },
    async unwrapKey(wrapped, id) {
      calls.push(`unwrap ${id}`);
      return privateDecrypt(privateKey, wrapped);
    },
  };
  return { wrapper, calls };
}

describe("a KMS behind the KeyWrapper hook", () => {
  it("wraps each artifact's data key through the hook and unwraps it on download", async () => {
    await using dir = await tempDir("slipstream-kms-");
    const payload = randomBytes(300_000);
    await makeTestArtifact(join(dir.path, "a"), { revision: 3n, payload });
    const kms = rsaKms("arn:kms:test-key");
    const store = new FsBlobStore(join(dir.path, "remote"));
    const up = await new ArtifactTransport(store, {
      keyWrapper: kms.wrapper,
      encryptUploads: true,
      chunkBytes: 64 * 1024,
    }).upload("k", join(dir.path, "a"));
    expect(up.manifest.encryption?.keyId).toBe("arn:kms:test-key");
    await new ArtifactTransport(store, { keyWrapper: kms.wrapper }).download("k", join(dir.path, "b"));
    expect(kms.calls).toEqual(["wrap", "unwrap arn:kms:test-key"]);
    const f = up.manifest.files[0] as { path: string; size: number; sha256: string };
    expect(await hashFile(join(dir.path, "b", f.path))).toEqual({ size: f.size, sha256: f.sha256 });
    // Another KMS key cannot unwrap it.
    const other = rsaKms("arn:kms:test-key");
    await expect(
      new ArtifactTransport(store, { keyWrapper: other.wrapper }).download("k", join(dir.path, "c")),
    ).rejects.toSatisfy((err: unknown) => SlipstreamError.is(err, "DECRYPTION_FAILED"));
  });
});
