import { generateKeyPairSync } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  assertManifestTrusted,
  checkManifestSignature,
  type ExportManifest,
  encodeManifest,
  hashFile,
  MANIFEST_FILE,
  manifestSigner,
  parseManifest,
  publicKeyId,
  SlipstreamError,
  verifyArtifact,
  WatchCursor,
} from "@slipstream/core";
import { describe, expect, it } from "vitest";

const SHA = "a".repeat(64);

function base(): ExportManifest {
  return {
    schemaVersion: 1,
    backend: "leveldb",
    backendVersion: "1",
    cursor: WatchCursor.fromRevision(42n),
    createdAt: new Date("2026-01-02T03:04:05.000Z"),
    files: [
      { path: "data/a", size: 10_000, sha256: SHA, chunks: ["1".repeat(64), "2".repeat(64), "3".repeat(64)] },
      { path: "data/b", size: 0, sha256: "b".repeat(64), chunks: [] },
    ],
    chunkSize: 4096,
  };
}

function keys() {
  return generateKeyPairSync("ed25519");
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return SlipstreamError.is(err) ? err.code : String(err);
  }
  return undefined;
}

describe("manifest optional fields", () => {
  it("leaves a manifest without them byte-identical and rejects unknown fields still", () => {
    const { chunkSize: _c, ...plain } = base();
    const old = { ...plain, files: plain.files.map(({ chunks: _x, ...f }) => f) };
    const text = encodeManifest(old);
    expect(text).not.toMatch(/chunk|signature|encryption/);
    expect(encodeManifest(parseManifest(text))).toBe(text);
    const doc = JSON.parse(text);
    doc.signatures = [];
    expect(code(() => parseManifest(JSON.stringify(doc)))).toBe("ARTIFACT_INVALID");
  });

  it("round-trips chunks, encryption and signature, and checks their shape", () => {
    const signer = manifestSigner(keys().privateKey);
    const m = signer.sign({
      ...base(),
      encryption: { algorithm: "aes-256-gcm", keyId: "fleet-1", wrappedKey: "AAAA", nonceSalt: "0".repeat(24) },
    });
    const text = encodeManifest(m);
    expect(encodeManifest(parseManifest(text))).toBe(text);
    const doc = JSON.parse(text);
    doc.files[0].chunks.pop();
    expect(() => parseManifest(JSON.stringify(doc))).toThrow(/has 2 hashes/);
    const noSize = JSON.parse(text);
    delete noSize.chunkSize;
    expect(code(() => parseManifest(JSON.stringify(noSize)))).toBe("ARTIFACT_INVALID");
    const extra = JSON.parse(text);
    extra.signature.extra = 1;
    expect(() => parseManifest(JSON.stringify(extra))).toThrow(/unknown field "extra" in signature/);
  });
});

describe("manifest signatures", () => {
  it("verifies with a trusted key; refuses unsigned, tampered, untrusted and expired", () => {
    const a = keys();
    const b = keys();
    const signer = manifestSigner(a.privateKey);
    expect(signer.keyId).toBe(publicKeyId(a.publicKey));
    expect(signer.keyId).toMatch(/^[0-9a-f]{16}$/);
    const signed = signer.sign(base());
    const bytes = Buffer.from(encodeManifest(signed));
    const m = parseManifest(bytes);
    const trustA = { keys: [{ publicKey: a.publicKey }] };

    expect(assertManifestTrusted(bytes, m, trustA)).toMatchObject({ status: "verified", keyId: signer.keyId });
    // Rotation: both keys trusted, either verifies.
    const both = {
      keys: [{ publicKey: b.publicKey }, { publicKey: a.publicKey.export({ format: "pem", type: "spki" }) as string }],
    };
    expect(assertManifestTrusted(bytes, m, both).status).toBe("verified");
    // No policy: accepted, reported as unchecked.
    expect(assertManifestTrusted(bytes, m, undefined)).toEqual({ status: "unchecked", keyId: signer.keyId });
    expect(code(() => assertManifestTrusted(bytes, m, { keys: [{ publicKey: b.publicKey }] }))).toBe(
      "SIGNER_UNTRUSTED",
    );

    // Any changed field breaks the signature, even when the result still parses.
    const tampered = Buffer.from(bytes.toString().replace('"000000000000002a"', '"000000000000002b"'));
    expect(code(() => assertManifestTrusted(tampered, parseManifest(tampered), trustA))).toBe("SIGNATURE_INVALID");
    const rehash = Buffer.from(bytes.toString().replace("1".repeat(64), "4".repeat(64)));
    expect(code(() => assertManifestTrusted(rehash, parseManifest(rehash), trustA))).toBe("SIGNATURE_INVALID");
    // Same content, different bytes (not canonical): refused.
    const spaced = Buffer.from(bytes.toString().replace("{\n", "{ \n"));
    expect(code(() => assertManifestTrusted(spaced, parseManifest(spaced), trustA))).toBe("SIGNATURE_INVALID");
    // A signature block moved onto another manifest.
    const other = { ...base(), cursor: WatchCursor.fromRevision(43n), signature: signed.signature };
    const otherBytes = Buffer.from(encodeManifest(other));
    expect(code(() => assertManifestTrusted(otherBytes, parseManifest(otherBytes), trustA))).toBe("SIGNATURE_INVALID");

    // Unsigned: refused with trust, accepted when explicitly allowed or without trust.
    const plain = Buffer.from(encodeManifest(base()));
    const pm = parseManifest(plain);
    expect(code(() => assertManifestTrusted(plain, pm, trustA))).toBe("ARTIFACT_UNSIGNED");
    expect(assertManifestTrusted(plain, pm, { ...trustA, allowUnsigned: true }).status).toBe("unsigned");
    expect(assertManifestTrusted(plain, pm, undefined).status).toBe("unsigned");

    // Expiry: by the clock, and by the artifact's own createdAt.
    const expired = { keys: [{ publicKey: a.publicKey, notAfter: new Date("2026-06-01T00:00:00Z") }] };
    expect(code(() => assertManifestTrusted(bytes, m, expired))).toBe("SIGNER_EXPIRED");
    expect(assertManifestTrusted(bytes, m, { ...expired, now: () => new Date("2026-05-01T00:00:00Z") }).status).toBe(
      "verified",
    );
    const early = {
      keys: [{ publicKey: a.publicKey, notAfter: new Date("2026-01-01T00:00:00Z") }],
      now: () => new Date("2025-12-01T00:00:00Z"),
    };
    expect(code(() => assertManifestTrusted(bytes, m, early))).toBe("SIGNER_EXPIRED");
    expect(checkManifestSignature(bytes, m, expired)).toMatchObject({ status: "expired", keyId: signer.keyId });
  });

  it("signs scope and exporter with the rest: both survive a round trip and a change to either breaks the signature", () => {
    const k = keys();
    const trust = { keys: [{ publicKey: k.publicKey }] };
    const signed = manifestSigner(k.privateKey).sign({ ...base(), scope: ["route.eu."], exporter: "edge-7:4242" });
    const text = encodeManifest(signed);
    // Field order: scope right after cursor, exporter after createdAt, the transport's fields last.
    const order = Object.keys(JSON.parse(text));
    expect(order.indexOf("scope")).toBe(order.indexOf("cursor") + 1);
    expect(order.indexOf("exporter")).toBe(order.indexOf("createdAt") + 1);
    expect(order.at(-1)).toBe("signature");
    const parsed = parseManifest(text);
    expect(parsed.scope).toEqual(["route.eu."]);
    expect(parsed.exporter).toBe("edge-7:4242");
    expect(encodeManifest(parsed)).toBe(text);
    expect(assertManifestTrusted(Buffer.from(text), parsed, trust).status).toBe("verified");
    for (const edit of [
      (d: Record<string, unknown>) => {
        d.scope = ["route."];
      },
      (d: Record<string, unknown>) => {
        d.exporter = "someone-else:1";
      },
      (d: Record<string, unknown>) => {
        delete d.scope;
      },
    ]) {
      const doc = JSON.parse(text) as Record<string, unknown>;
      edit(doc);
      const forged = `${JSON.stringify(doc, null, 2)}\n`;
      expect(code(() => assertManifestTrusted(Buffer.from(forged), parseManifest(forged), trust))).toBe(
        "SIGNATURE_INVALID",
      );
    }
  });

  it("refuses a signed manifest with any single byte changed", () => {
    const a = keys();
    const signed = manifestSigner(a.privateKey).sign({
      ...base(),
      encryption: { algorithm: "aes-256-gcm", keyId: "fleet-1", wrappedKey: "AAAA", nonceSalt: "0".repeat(24) },
    });
    const bytes = Buffer.from(encodeManifest(signed));
    const trust = { keys: [{ publicKey: a.publicKey }] };
    const outcomes = new Set<string | undefined>();
    for (let i = 0; i < bytes.length; i++) {
      for (const flip of [0x01, 0x20]) {
        const bad = Buffer.from(bytes);
        bad[i] = (bad[i] as number) ^ flip;
        const got = code(() => assertManifestTrusted(bad, parseManifest(bad), trust));
        expect(["ARTIFACT_INVALID", "SIGNATURE_INVALID", "SIGNER_UNTRUSTED"], `byte ${i} ^ ${flip}`).toContain(got);
        outcomes.add(got);
      }
    }
    expect([...outcomes].sort()).toEqual(["ARTIFACT_INVALID", "SIGNATURE_INVALID", "SIGNER_UNTRUSTED"]);
  });

  it("admits one spelling of a signature: base64 with ignored bits set is refused", () => {
    const signed = manifestSigner(keys().privateKey).sign(base());
    const value = signed.signature?.value as string;
    expect(value.endsWith("==")).toBe(true);
    // The last character before "==" carries 4 ignored bits: setting one decodes to the same bytes.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const last = value.at(-3) as string;
    const twin = `${value.slice(0, -3)}${alphabet[alphabet.indexOf(last) | 1]}==`;
    expect(Buffer.from(twin, "base64").equals(Buffer.from(value, "base64"))).toBe(true);
    const bytes = Buffer.from(encodeManifest(signed).replace(value, twin));
    expect(code(() => parseManifest(bytes))).toBe("ARTIFACT_INVALID");
  });

  it("accepts raw 32-byte and PEM public keys alike and refuses non-Ed25519 keys", () => {
    const a = keys();
    const raw = Buffer.from((a.publicKey.export({ format: "jwk" }) as { x: string }).x, "base64url");
    expect(publicKeyId(raw)).toBe(publicKeyId(a.publicKey));
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
    expect(code(() => publicKeyId(rsa.publicKey))).toBe("INVALID_ARGUMENT");
    expect(code(() => manifestSigner("not a key"))).toBe("INVALID_ARGUMENT");
  });

  it("verifyArtifact reports the signature verdict and refusals as problems", async () => {
    const dir = await mkdtemp(join(tmpdir(), "slipstream-core-trust-"));
    try {
      await mkdir(join(dir, "data"));
      await writeFile(join(dir, "data", "f"), "hello");
      const h = await hashFile(join(dir, "data", "f"));
      const a = keys();
      const signer = manifestSigner(a.privateKey);
      const m: ExportManifest = { ...base(), files: [{ path: "data/f", ...h }], chunkSize: undefined };
      const { chunkSize: _c, ...plain } = m;
      await writeFile(join(dir, MANIFEST_FILE), encodeManifest(signer.sign(plain)));
      const ok = await verifyArtifact(dir, { trust: { keys: [{ publicKey: a.publicKey }] } });
      expect(ok.ok).toBe(true);
      expect(ok.signature).toMatchObject({ status: "verified", keyId: signer.keyId });
      const bad = await verifyArtifact(dir, { trust: { keys: [{ publicKey: keys().publicKey }] } });
      expect(bad.ok).toBe(false);
      expect(bad.problems.map((p) => p.kind)).toEqual(["signature"]);
      expect((await verifyArtifact(dir)).signature).toEqual({ status: "unchecked", keyId: signer.keyId });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
