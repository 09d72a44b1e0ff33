import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { EXIT } from "@slipstream/cli";
import { connect, type NatsConnection, type NatsKvStore } from "@slipstream/nats";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { freePort, hasNats, type NatsServerHandle, startNats, type TempDir, tempDir } from "@slipstream/testkit";
import { ArtifactTransport } from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, foldOf } from "./helpers.js";

const encoder = new TextEncoder();
const enc = (s: string): Uint8Array => encoder.encode(s);
let server: NatsServerHandle;
let conn: NatsConnection;
let tmp: TempDir;
let n = 0;

async function fill(kv: NatsKvStore, prefix: string, count: number, size = 10): Promise<void> {
  for (let i = 0; i < count; i++) await kv.writer.put(`${prefix}.${i}`, new Uint8Array(size).fill(65));
}

describe.skipIf(!hasNats("any"))("diff and status against a live nats-server", () => {
  beforeAll(async () => {
    server = await startNats();
    conn = await connect({ servers: server.url, timeoutMs: 5000 });
    tmp = await tempDir("slipstream-cli-nats-");
  });
  afterAll(async () => {
    await conn?.close();
    await server?.close();
    await tmp?.cleanup();
  });

  const bucketName = () => `cli_${++n}`;

  it("diff: a fold of the bucket is in sync (exit 0); changes show as missing, extra and stale (exit 1)", async () => {
    const name = bucketName();
    const kv = await conn.store({ name });
    await fill(kv, "route", 10);
    await kv.writer.put("svc.a", enc("a"));
    const dir = join(tmp.path, `fold-${name}`);
    const cursor = await foldOf(kv, dir);
    const args = ["diff", dir, "--nats", server.url, "--bucket", name];
    const same = await cli(args);
    expect(same.code).toBe(EXIT.OK);
    expect(same.stdout).toMatch(/IN SYNC — 11 keys/);

    await kv.writer.put("route.3", enc("changed")); // stale (pending: newer than the fold's cursor)
    await kv.writer.delete("route.4"); // extra in the fold
    await kv.writer.put("route.new", enc("n")); // missing from the fold
    const r = await cli(args);
    expect(r.code).toBe(EXIT.PROBLEM);
    expect(r.stdout).toMatch(/DIFFERENT — 1 missing, 1 extra, 1 stale/);
    expect(r.stdout).toMatch(/missing\s+route.new\s+fold -\s+bucket \d+\s+\(pending\)/);
    expect(r.stdout).toMatch(/2 of the differences are revisions newer than the fold's cursor/);
    const j = (await cli([...args, "--json", "--prefix", "route."])).json<{
      differ: boolean;
      counts: Record<string, number>;
      stale: { key: string; foldRevision: string; bucketRevision: string; pending: boolean }[];
      foldCursor: string;
    }>();
    expect(j.differ).toBe(true);
    expect(j.counts).toEqual({ missing: 1, extra: 1, stale: 1, pending: 2 });
    expect(j.stale[0]).toMatchObject({ key: "route.3", foldRevision: "4", pending: true });
    expect(j.foldCursor).toBe(String(cursor));
    // Only the svc. prefix: still in sync.
    expect((await cli([...args, "--prefix", "svc."])).code).toBe(EXIT.OK);
    // Read-only: the fold's cursor did not move.
    const store = await LevelSnapshotStore.open(dir);
    expect(store.cursor.revision).toBe(cursor);
    await store.close();
  });

  it("status: bucket sequences and limits, and the horizon of a fold and of the published artifact", async () => {
    const name = bucketName();
    const kv = await conn.store({ name, maxBytes: 16 * 1024, discard: "old" });
    await fill(kv, "a", 5, 200);
    // The artifact is exported at revision 5 and published to a file:// transport.
    const old = join(tmp.path, `old-${name}`);
    await foldOf(kv, old);
    const store = await LevelSnapshotStore.open(old);
    const artifactDir = join(tmp.path, `artifact-${name}`);
    await store.exportTo(artifactDir);
    await store.close();
    const remote = join(tmp.path, `remote-${name}`);
    await mkdir(remote);
    await new ArtifactTransport(new FsBlobStore(remote)).upload("edge", artifactDir);
    await fill(kv, "b", 10, 200);
    const fold = join(tmp.path, `fold-${name}`);
    await foldOf(kv, fold);

    const args = [
      "status",
      "--nats",
      server.url,
      "--bucket",
      name,
      "--fold",
      fold,
      "--transport",
      pathToFileURL(remote).href,
    ];
    const r = await cli(args);
    expect(r.code).toBe(EXIT.OK);
    expect(r.stdout).toMatch(/sequences\s+first 1, last 15 \(15 messages/);
    expect(r.stdout).toMatch(/limits\s+max_bytes 16.0 KiB, max_msgs none, max_age none, discard old, history 1/);
    expect(r.stdout).toMatch(/fold\s+.* at 15: ok, 0 behind; can resume for \d+ more messages/);
    expect(r.stdout).toMatch(/artifact\s+file:\/\/.* key edge at 5: ok, 10 behind; can resume for \d+ more messages/);
    const jr = (await cli([...args, "--json"])).json<{
      bucket: { firstSeq: string; lastSeq: string; limits: { discard: string } };
      fold: { horizon: { state: string; behind: string; messagesRemaining: number } };
      artifact: { key: string; horizon: { state: string; behind: string; messagesRemaining: number } };
    }>();
    expect(jr.bucket).toMatchObject({ firstSeq: "1", lastSeq: "15", limits: { discard: "old" } });
    expect(jr.fold.horizon).toMatchObject({ state: "ok", behind: "0" });
    expect(jr.artifact.horizon).toMatchObject({ state: "ok", behind: "10" });
    const remaining = jr.artifact.horizon.messagesRemaining;
    expect(remaining).toBeGreaterThan(0);
    expect(jr.fold.horizon.messagesRemaining).toBeGreaterThan(remaining);

    // Publish past the artifact's horizon: it can no longer resume (exit 1), the fold still can.
    await fill(kv, "c", remaining + 3, 200);
    const after = await cli(args);
    expect(after.code).toBe(EXIT.PROBLEM);
    expect(after.stdout).toMatch(/artifact\s+.* at 5: EXPIRED: the bucket no longer holds revision 6/);
    expect(after.stdout).toMatch(/fold\s+.* at 15: ok/);
    const st = await kv.status();
    expect(st.firstSeq).toBeGreaterThan(6n);

    // A corrupt pointer: status says so (exit 1) rather than leaving the artifact out.
    await writeFile(join(remote, "edge.manifest.json"), "{ corrupt");
    const corrupt = await cli(args);
    expect(corrupt.code).toBe(EXIT.PROBLEM);
    expect(corrupt.stderr).toMatch(/pointer of artifact edge .* is unreadable: malformed manifest/);
  });

  it("status without --fold/--transport shows the bucket; NATS_URL is the default server", async () => {
    const name = bucketName();
    const kv = await conn.store({ name, maxAgeMs: 3_600_000 });
    await kv.writer.put("k", enc("v"));
    const r = await cli(["status", "--bucket", name], { env: { NATS_URL: server.url } });
    expect(r.code).toBe(EXIT.OK);
    expect(r.stdout).toMatch(/max_age 1h0m/);
    expect(r.stdout).toMatch(/pass --fold DIR/);
  });

  it("bad input: no server (2), unreachable server (4), missing bucket (3, not created), missing fold (3)", async () => {
    const dir = join(tmp.path, "fold-bad");
    const kv = await conn.store({ name: "cli_bad" });
    await kv.writer.put("k", enc("v"));
    await foldOf(kv, dir);
    const noServer = await cli(["diff", dir, "--bucket", "cli_bad"]);
    expect(noServer.code).toBe(EXIT.USAGE);
    expect(noServer.stderr).toMatch(/NATS_URL/);
    const port = await freePort();
    const dead = await cli(["status", "--nats", `nats://127.0.0.1:${port}`, "--bucket", "cli_bad", "--timeout", "3s"]);
    expect(dead.code).toBe(EXIT.UNAVAILABLE);
    expect(dead.stderr).toMatch(/slipstream: .*(refused|connect)/i);
    const deadJson = await cli(["diff", dir, "--nats", `nats://127.0.0.1:${port}`, "--bucket", "cli_bad", "--json"]);
    expect(deadJson.json()).toMatchObject({ error: { code: "CONNECTION_FAILED", exitCode: 4 } });
    const missing = await cli(["status", "--nats", server.url, "--bucket", "no_such_bucket"]);
    expect(missing.code).toBe(EXIT.INPUT);
    expect(missing.stderr).toMatch(/bucket no_such_bucket does not exist/);
    const again = await conn.store({ name: "no_such_bucket" }, { create: false }).catch((e) => e);
    expect(again).toBeInstanceOf(Error);
    const noFold = await cli(["diff", join(tmp.path, "nope"), "--nats", server.url, "--bucket", "cli_bad"]);
    expect(noFold.code).toBe(EXIT.INPUT);
  });
});
