/**
 * TLS material made at test time with the `openssl` command (node:crypto cannot issue X.509
 * certificates): a CA, a server certificate for 127.0.0.1/localhost and a client
 * certificate signed by it, and an unrelated CA. Nothing is committed, nothing expires
 * between runs. Use {@link hasOpenssl} to skip when the command is missing.
 */
import { execFileSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

let found: boolean | undefined;

/** True when an `openssl` command runs here. */
export function hasOpenssl(): boolean {
  if (found === undefined) {
    try {
      execFileSync("openssl", ["version"], { stdio: "ignore" });
      found = true;
    } catch {
      found = false;
    }
  }
  return found;
}

/** Paths of the PEM files {@link makeTlsFiles} wrote. */
export interface TlsFiles {
  /** The CA that signed the server and client certificates. */
  readonly ca: string;
  /** Server certificate (SAN 127.0.0.1 and localhost) and key. */
  readonly serverCert: string;
  readonly serverKey: string;
  /** Client certificate (for mutual TLS) and key. */
  readonly clientCert: string;
  readonly clientKey: string;
  /** A CA that signed nothing here: trusting only it must fail. */
  readonly otherCa: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

function makeCa(dir: string, name: string): void {
  openssl(
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
      .concat(["-subj", `/CN=${name}`, "-keyout", `${name}-key.pem`, "-out", `${name}.pem`])
      .concat(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
    dir,
  );
}

/** `<name>.pem` and `<name>-key.pem`, signed by `ca.pem`, with the X.509 extensions in `<name>.ext`. */
function makeLeaf(dir: string, name: string): void {
  openssl(
    ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"].concat([
      "-subj",
      `/CN=${name}`,
      "-keyout",
      `${name}-key.pem`,
      "-out",
      `${name}.csr`,
    ]),
    dir,
  );
  openssl(
    ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial"].concat([
      "-days",
      "2",
      "-out",
      `${name}.pem`,
      "-extfile",
      `${name}.ext`,
    ]),
    dir,
  );
}

/**
 * Writes a fresh CA, server and client certificates (EC P-256, valid 2 days) and an
 * unrelated CA into `dir` (created if missing). Throws when `openssl` fails.
 */
export async function makeTlsFiles(dir: string): Promise<TlsFiles> {
  await mkdir(dir, { recursive: true });
  makeCa(dir, "ca");
  makeCa(dir, "other-ca");
  await writeFile(
    join(dir, "server.ext"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n",
  );
  await writeFile(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n");
  makeLeaf(dir, "server");
  makeLeaf(dir, "client");
  return {
    ca: join(dir, "ca.pem"),
    serverCert: join(dir, "server.pem"),
    serverKey: join(dir, "server-key.pem"),
    clientCert: join(dir, "client.pem"),
    clientKey: join(dir, "client-key.pem"),
    otherCa: join(dir, "other-ca.pem"),
  };
}
