import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { EXIT } from "@slipstream/cli";
import { manifestSigner, publicKeyId } from "@slipstream/core";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { type TempDir, tempDir } from "@slipstream/testkit";
import { ArtifactTransport, symmetricKeyWrapper } from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, makeFold, routes } from "./helpers.js";

let tmp: TempDir;
let url: string;
let trusted: string;
let other: string;
let keyId: string;
let remote: string;
const fleetKey = randomBytes(32);
const env = { SLIPSTREAM_FLEET_KEY: fleetKey.toString("base64") };

beforeAll(async () => {
  tmp = await tempDir("slipstream-cli-trust-");
  const fold = join(tmp.path, "fold");
  await makeFold(fold, routes(300));
  const store = await LevelSnapshotStore.open(fold);
  await store.exportTo(join(tmp.path, "artifact"));
  await store.close();
  remote = join(tmp.path, "remote");
  await mkdir(remote);
  url = pathToFileURL(remote).href;
  const keys = generateKeyPairSync("ed25519");
  keyId = publicKeyId(keys.publicKey);
  trusted = join(tmp.path, "trusted.pem");
  other = join(tmp.path, "other.pem");
  await writeFile(trusted, keys.publicKey.export({ format: "pem", type: "spki" }) as string);
  await writeFile(other, generateKeyPairSync("ed25519").publicKey.export({ format: "pem", type: "spki" }) as string);
  const transport = new ArtifactTransport(new FsBlobStore(remote), {
    signer: manifestSigner(keys.privateKey),
    keyWrapper: symmetricKeyWrapper(fleetKey),
    encryptUploads: true,
  });
  await transport.upload("edge/eu", join(tmp.path, "artifact"));
  const plain = new ArtifactTransport(new FsBlobStore(remote));
  await plain.upload("edge/unsigned", join(tmp.path, "artifact"));
});
afterAll(async () => {
  await tmp.cleanup();
});

describe("signatures and encryption in the CLI", () => {
  it("artifacts shows the signer key id, the verdict under --trusted-key and the encryption", async () => {
    const r = await cli(["artifacts", url, "--trusted-key", trusted, "--json"]);
    expect(r.code).toBe(EXIT.OK);
    const doc = r.json<{ artifacts: { key: string; pointer: Record<string, unknown> }[] }>();
    const eu = doc.artifacts.find((a) => a.key === "edge/eu");
    expect(eu?.pointer.signature).toEqual({ status: "verified", keyId, message: null });
    expect(eu?.pointer.encryption).toMatchObject({ algorithm: "aes-256-gcm" });
    const unsigned = doc.artifacts.find((a) => a.key === "edge/unsigned");
    expect(unsigned?.pointer.signature).toMatchObject({ status: "unsigned" });
    const text = await cli(["artifacts", url, "--key", "edge/eu"]);
    expect(text.stdout).toMatch(new RegExp(`signature\\s+signed by key ${keyId}, not checked`));
    expect(text.stdout).toMatch(/encryption\s+aes-256-gcm at rest \(the remote payload\), data key wrapped for fleet-/);
  });

  it("verify of a URL: verified with the right key; refused with another, without the fleet key, or unsigned", async () => {
    const ok = await cli(["verify", url, "edge/eu", "--trusted-key", trusted, "--no-progress"], { env });
    expect(ok.code).toBe(EXIT.OK);
    expect(ok.stdout).toMatch(new RegExp(`signature\\s+verified, key ${keyId}`));
    expect(ok.stdout).toMatch(/verdict\s+OK/);
    const foreign = await cli(["verify", url, "edge/eu", "--trusted-key", other, "--json"], { env });
    expect(foreign.code).toBe(EXIT.PROBLEM);
    expect(foreign.json()).toMatchObject({
      ok: false,
      problems: [{ kind: "signature", message: /^SIGNER_UNTRUSTED/ }],
    });
    const noKey = await cli(["verify", url, "edge/eu", "--trusted-key", trusted, "--json"]);
    expect(noKey.code).toBe(EXIT.PROBLEM);
    expect(noKey.json()).toMatchObject({ problems: [{ message: /^DECRYPTION_FAILED/ }] });
    const unsigned = await cli(["verify", url, "edge/unsigned", "--trusted-key", trusted, "--json"]);
    expect(unsigned.json()).toMatchObject({ problems: [{ message: /^ARTIFACT_UNSIGNED/ }] });
    const allowed = await cli(["verify", url, "edge/unsigned", "--trusted-key", trusted, "--allow-unsigned", "--json"]);
    expect(allowed.code).toBe(EXIT.OK);
    expect(allowed.json()).toMatchObject({ ok: true, signature: { status: "unsigned" }, encryption: null });
  });

  it("verify of a local (downloaded) artifact checks its embedded signature", async () => {
    const dir = join(tmp.path, "downloaded");
    await new ArtifactTransport(new FsBlobStore(remote), { keyWrapper: symmetricKeyWrapper(fleetKey) }).download(
      "edge/eu",
      dir,
    );
    const ok = await cli(["verify", dir, "--trusted-key", trusted, "--json"]);
    expect(ok.code).toBe(EXIT.OK);
    expect(ok.json()).toMatchObject({ ok: true, signature: { status: "verified", keyId } });
    const bad = await cli(["verify", dir, "--trusted-key", other, "--json"]);
    expect(bad.code).toBe(EXIT.PROBLEM);
    expect(bad.json()).toMatchObject({ ok: false, problems: [{ kind: "signature", message: /^SIGNER_UNTRUSTED/ }] });
    const unchecked = await cli(["verify", dir]);
    expect(unchecked.stdout).toMatch(new RegExp(`signature\\s+signed by key ${keyId}, not checked`));
  });

  it("pull enforces trust: an untrusted artifact is refused (exit 1) and nothing is created", async () => {
    const dest = join(tmp.path, "pulled-bad");
    const bad = await cli(["pull", url, dest, "--key", "edge/eu", "--trusted-key", other, "--no-progress"], { env });
    expect(bad.code).toBe(EXIT.PROBLEM);
    expect(bad.stderr).toMatch(/not trusted/);
    expect((await readdir(tmp.path)).filter((n) => n.startsWith("pulled-bad"))).toEqual([]);
    const good = join(tmp.path, "pulled");
    const r = await cli(["pull", url, good, "--key", "edge/eu", "--trusted-key", trusted, "--json"], { env });
    expect(r.code).toBe(EXIT.OK);
    expect(r.json()).toMatchObject({
      entries: 300,
      signature: { status: "verified", keyId },
      encryption: { algorithm: "aes-256-gcm" },
    });
  });
});
