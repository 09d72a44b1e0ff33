import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hasOpenssl, makeTlsFiles, tempDir } from "../src/index.js";

describe.skipIf(!hasOpenssl())("makeTlsFiles (needs openssl)", () => {
  it("issues server and client certificates signed by a fresh CA; the other CA signed neither", async () => {
    await using dir = await tempDir("tls-");
    const f = await makeTlsFiles(join(dir.path, "tls"));
    const cert = async (p: string) => new X509Certificate(await readFile(p));
    const ca = await cert(f.ca);
    const other = await cert(f.otherCa);
    const server = await cert(f.serverCert);
    const client = await cert(f.clientCert);
    expect(ca.ca).toBe(true);
    expect(server.checkIssued(ca) && server.verify(ca.publicKey)).toBe(true);
    expect(client.checkIssued(ca) && client.verify(ca.publicKey)).toBe(true);
    expect(server.checkIssued(other)).toBe(false);
    expect(server.subjectAltName).toContain("IP Address:127.0.0.1");
    expect(server.checkHost("localhost")).toBe("localhost");
    expect(new Date(server.validTo).getTime()).toBeGreaterThan(Date.now());
    expect(await readFile(f.serverKey, "utf8")).toMatch(/PRIVATE KEY/);
  });
});
