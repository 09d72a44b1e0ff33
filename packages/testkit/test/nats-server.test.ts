import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { connect, createServer, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import {
  freePort,
  hasNats,
  type NatsServerHandle,
  natsMissingReason,
  readNatsInfo,
  repoRoot,
  startNats,
  tempDir,
  waitFor,
} from "../src/index.js";

/**
 * A deliberately tiny NATS client over a raw socket: enough protocol (INFO, CONNECT, SUB,
 * PUB, MSG) to create a JetStream stream, store a message and read stream info, without any
 * NATS library.
 */
class RawNats {
  private buf = "";
  private waiters: (() => void)[] = [];
  private sid = 0;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buf += chunk;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async open(port: number): Promise<{ nc: RawNats; info: Record<string, unknown> }> {
    const socket = connect({ host: "127.0.0.1", port });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const nc = new RawNats(socket);
    const line = await nc.readLine();
    expect(line.startsWith("INFO ")).toBe(true);
    const info = JSON.parse(line.slice(5)) as Record<string, unknown>;
    socket.write('CONNECT {"verbose":false,"pedantic":false,"headers":false}\r\n');
    return { nc, info };
  }

  private async more(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`raw NATS read timed out; buffer: ${this.buf}`)), 5_000);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private async readLine(): Promise<string> {
    for (;;) {
      const i = this.buf.indexOf("\r\n");
      if (i >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        return line;
      }
      await this.more();
    }
  }

  /** Request/reply: returns the decoded JSON reply. */
  async request(subject: string, payload: unknown): Promise<Record<string, unknown>> {
    const sid = ++this.sid;
    const inbox = `_INBOX.testkit.${sid}`;
    const body = payload === undefined ? "" : JSON.stringify(payload);
    this.socket.write(`SUB ${inbox} ${sid}\r\nPUB ${subject} ${inbox} ${Buffer.byteLength(body)}\r\n${body}\r\n`);
    for (;;) {
      const line = await this.readLine();
      if (line === "PING") {
        this.socket.write("PONG\r\n");
        continue;
      }
      if (line.startsWith("-ERR")) throw new Error(line);
      // MSG <subject> <sid> [reply-to] <#bytes> (2.9 writes an empty reply-to as a double space)
      const parts = line.split(/\s+/);
      if (parts[0] !== "MSG") continue;
      const size = Number(parts[parts.length - 1]);
      while (Buffer.byteLength(this.buf) < size + 2) await this.more();
      const data = this.buf.slice(0, size);
      this.buf = this.buf.slice(size + 2);
      if (parts[1] !== inbox) continue;
      this.socket.write(`UNSUB ${sid}\r\n`);
      return JSON.parse(data) as Record<string, unknown>;
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Resolves with the socket error code of a connection attempt ("connected" if it worked). */
function connectOutcome(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve("connected");
    });
    s.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? String(err)));
  });
}

function listRecursive(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" });
}

async function storeAndCount(server: NatsServerHandle): Promise<void> {
  const { nc } = await RawNats.open(server.port);
  try {
    const created = await nc.request("$JS.API.STREAM.CREATE.TK", { name: "TK", subjects: ["tk.>"], storage: "file" });
    expect(created.error).toBeUndefined();
    const ack = await nc.request("tk.one", { hello: "world" });
    expect(ack).toMatchObject({ stream: "TK", seq: 1 });
  } finally {
    nc.close();
  }
}

async function messagesIn(server: NatsServerHandle, stream: string): Promise<number> {
  const { nc } = await RawNats.open(server.port);
  try {
    const info = await nc.request(`$JS.API.STREAM.INFO.${stream}`, undefined);
    const state = info.state as { messages?: number } | undefined;
    return state?.messages ?? -1;
  } finally {
    nc.close();
  }
}

for (const line of ["2.9", "2.10"] as const) {
  const available = hasNats(line);
  if (!available) console.warn(`[testkit] skipping nats-server ${line} tests: ${natsMissingReason(line)}`);

  describe.skipIf(!available)(`startNats (nats-server ${line})`, () => {
    it("starts with JetStream on a loopback port and says so in INFO", async () => {
      await using server = await startNats({ version: line });
      expect(server.version.startsWith(`${line}.`)).toBe(true);
      expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
      expect(server.running).toBe(true);
      expect(server.pid).toBeGreaterThan(0);

      const { nc, info } = await RawNats.open(server.port);
      nc.close();
      expect(info.jetstream).toBe(true);
      expect(info.version).toBe(server.version);
      expect(info.port).toBe(server.port);

      const viaHelper = await readNatsInfo(server.port);
      expect(viaHelper.jetstream).toBe(true);
      expect(viaHelper.version).toBe(server.version);
      expect(server.logs()).toContain("Server is ready");
    });

    it("restart comes back on the same port with the same store dir and data", async () => {
      await using server = await startNats({ version: line });
      const port = server.port;
      await storeAndCount(server);
      expect(existsSync(`${server.storeDir}/jetstream`)).toBe(true);
      expect(listRecursive(server.storeDir).some((p) => p.includes("TK"))).toBe(true);
      const firstPid = server.pid;

      await server.stop();
      expect(server.running).toBe(false);
      expect(await connectOutcome(port)).toBe("ECONNREFUSED");

      await server.restart();
      expect(server.running).toBe(true);
      expect(server.pid).not.toBe(firstPid);
      expect(server.port).toBe(port);
      expect((await readNatsInfo(port)).jetstream).toBe(true);
      expect(listRecursive(server.storeDir).some((p) => p.includes("TK"))).toBe(true);
      expect(await messagesIn(server, "TK")).toBe(1);

      // restart() on a running server stops it first
      await server.restart();
      expect(await messagesIn(server, "TK")).toBe(1);
    });

    it("kill() is a crash: the port refuses connections, restart() recovers", async () => {
      await using server = await startNats({ version: line });
      await storeAndCount(server);
      await server.kill();
      expect(server.running).toBe(false);
      expect(server.pid).toBeUndefined();
      expect(await connectOutcome(server.port)).toBe("ECONNREFUSED");
      expect(existsSync(`${server.storeDir}/jetstream`)).toBe(true);

      await server.restart();
      expect(await connectOutcome(server.port)).toBe("connected");
      expect((await readNatsInfo(server.port)).jetstream).toBe(true);
    });

    it("close() kills the server and removes its temporary directory; it is idempotent", async () => {
      const server = await startNats({ version: line });
      const { storeDir, port } = server;
      expect(existsSync(storeDir)).toBe(true);
      await server.close();
      expect(server.running).toBe(false);
      expect(existsSync(storeDir)).toBe(false);
      expect(await connectOutcome(port)).toBe("ECONNREFUSED");
      await server.close();
      await expect(server.restart()).rejects.toThrow(/closed/);
    });

    it("passes JetStream limits and extra args to the server", async () => {
      await using server = await startNats({
        version: line,
        jetstream: { maxMemory: 64 * 1024 * 1024, maxFile: 256 * 1024 * 1024 },
        args: ["--server_name", "testkit-limits"],
      });
      expect(server.logs()).toMatch(/Max Memory:\s+64(\.00)? MB/);
      expect(server.logs()).toMatch(/Max Storage:\s+256(\.00)? MB/);
      const info = await readNatsInfo(server.port);
      expect(info.raw.server_name).toBe("testkit-limits");
    });

    it("retries on another port when the chosen one is taken", async () => {
      // Many servers at once race for free ports; all of them must come up.
      const servers = await Promise.all([1, 2, 3].map(() => startNats({ version: line })));
      try {
        expect(new Set(servers.map((s) => s.port)).size).toBe(3);
      } finally {
        await Promise.all(servers.map((s) => s.close()));
      }
    });
  });
}

describe.skipIf(!hasNats("any"))("cleanup at process exit", () => {
  for (const how of ["exit", "SIGTERM", "SIGINT"] as const) {
    it(`a process that ends by ${how} without close() leaves no server and no temp dir`, async () => {
      await using dir = await tempDir("testkit-exit-");
      const script = join(dir.path, "leak.mts");
      const entry = pathToFileURL(join(repoRoot(), "packages", "testkit", "src", "index.ts")).href;
      await writeFile(
        script,
        [
          `import { startNats } from ${JSON.stringify(entry)};`,
          "const s = await startNats();",
          "console.log(JSON.stringify({ port: s.port, storeDir: s.storeDir }));",
          `const how = ${JSON.stringify(how)};`,
          'if (how !== "exit") { setInterval(() => {}, 1000); process.kill(process.pid, how); }',
        ].join("\n"),
      );
      const out = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, ["--import", "tsx", script], { cwd: repoRoot() }, (err, stdout, stderr) => {
          if (err && how === "exit") reject(new Error(`${err.message}\n${stderr}`));
          else resolve(stdout);
        });
      });
      const { port, storeDir } = JSON.parse(out.trim()) as { port: number; storeDir: string };
      await waitFor(async () => (await connectOutcome(port)) === "ECONNREFUSED", {
        timeoutMs: 5_000,
        message: `the server on port ${port} still answers after its owner ended`,
      });
      expect(existsSync(dirname(storeDir))).toBe(false);
    });
  }
});

describe("startNats version selection", () => {
  it.skipIf(!hasNats("2.10"))('"any" prefers 2.10 when it is available', async () => {
    const saved = process.env.NATS_SERVER_BIN;
    delete process.env.NATS_SERVER_BIN;
    try {
      await using server = await startNats();
      expect(server.version.startsWith("2.10.")).toBe(true);
    } finally {
      if (saved !== undefined) process.env.NATS_SERVER_BIN = saved;
    }
  });

  it("fails with a message saying what to install when no binary is found", async () => {
    const saved = process.env.NATS_SERVER_BIN;
    process.env.NATS_SERVER_BIN = "/nonexistent/nats-server";
    try {
      await expect(startNats({ version: "any" })).rejects.toThrow(/No nats-server binary found.*npm test/s);
      expect(natsMissingReason("any")).toContain("NATS_SERVER_BIN");
    } finally {
      if (saved === undefined) delete process.env.NATS_SERVER_BIN;
      else process.env.NATS_SERVER_BIN = saved;
    }
  });
});

describe("helpers", () => {
  it("freePort returns a port that can be bound", async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", resolve);
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("tempDir creates a directory and removes it on dispose", async () => {
    let path: string;
    {
      await using dir = await tempDir("testkit-");
      path = dir.path;
      expect(existsSync(path)).toBe(true);
    }
    expect(existsSync(path)).toBe(false);
    const again = await tempDir();
    await again.cleanup();
    await again.cleanup();
    expect(existsSync(again.path)).toBe(false);
  });

  it("waitFor resolves when the condition holds and throws the message on the deadline", async () => {
    let n = 0;
    await waitFor(() => ++n >= 3, { intervalMs: 1 });
    expect(n).toBe(3);
    await waitFor(async () => true);
    await expect(waitFor(() => false, { timeoutMs: 30, intervalMs: 5, message: "never true" })).rejects.toThrow(
      /timed out after 30 ms: never true/,
    );
    const err = await waitFor(
      () => {
        throw new Error("boom");
      },
      { timeoutMs: 20, intervalMs: 5, message: "throws" },
    ).catch((e: Error) => e);
    expect((err as Error).cause).toBeInstanceOf(Error);
  });
});
