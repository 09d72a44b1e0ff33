import { describe, expect, it } from "vitest";
import { versionAtLeast } from "../src/connect.js";
import { parseServer, redactUrl, resolveAuth } from "../src/credentials.js";
import { keyOf, toUpdate } from "../src/decode.js";
import { planFilters, validateKey, validatePrefix } from "../src/keys.js";
import { pullExpiresMs } from "../src/watcher.js";

const P = "$KV.b.";

describe("planFilters", () => {
  it("dot-terminated prefixes filter exactly on the server", () => {
    const plan = planFilters(P, ["node."], true);
    expect(plan.subjects).toEqual(["$KV.b.node.>"]);
    expect(plan.clientFiltered).toBe(false);
    expect(plan.accepts("node.a")).toBe(true);
  });

  it("a partial last token filters on its dot-terminated part plus a byte-prefix check", () => {
    const plan = planFilters(P, ["node.a"], true);
    expect(plan.subjects).toEqual(["$KV.b.node.>"]);
    expect(plan.clientFiltered).toBe(true);
    expect(["node.a", "node.ab", "node.a.b", "node.b"].map(plan.accepts)).toEqual([true, true, true, false]);
    expect(planFilters(P, ["node"], true).subjects).toEqual(["$KV.b.>"]);
  });

  it("overlapping prefixes collapse (no overlapping filter_subjects); '' covers all", () => {
    expect(planFilters(P, ["a.", "a.b.", "c."], true).subjects).toEqual(["$KV.b.a.>", "$KV.b.c.>"]);
    expect(planFilters(P, ["a.", ""], true).subjects).toEqual(["$KV.b.>"]);
    expect(planFilters(P, ["a.", "a."], true).subjects).toEqual(["$KV.b.a.>"]);
  });

  it("without multi-filter support several filters become one whole-bucket filter, narrowed client-side", () => {
    const plan = planFilters(P, ["a.", "c."], false);
    expect(plan.subjects).toEqual(["$KV.b.>"]);
    expect(plan.clientFiltered).toBe(true);
    expect(["a.x", "c.y", "d.z"].map(plan.accepts)).toEqual([true, true, false]);
    // a single filter stays server-side
    expect(planFilters(P, ["a."], false).subjects).toEqual(["$KV.b.a.>"]);
  });

  it("an empty list watches nothing", () => {
    const plan = planFilters(P, [], true);
    expect(plan.subjects).toEqual([]);
    expect(plan.accepts("x")).toBe(false);
  });

  it("bad prefixes are INVALID_ARGUMENT", () => {
    for (const p of ["a*", "a >", ".a", "a..b", "$x"]) {
      expect(() => validatePrefix(p)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    }
    expect(() => validatePrefix("a.b.")).not.toThrow();
    expect(() => validateKey("a/b=c_d-e.f")).not.toThrow();
  });
});

describe("credentials", () => {
  it("splits userinfo off server URLs and redacts it in messages", () => {
    expect(parseServer("nats://u:p%40ss@h:4222")).toEqual({ url: "nats://h:4222", user: "u", pass: "p@ss" });
    expect(parseServer("h:4222")).toEqual({ url: "nats://h:4222" });
    expect(parseServer("tls://tok@h:1")).toEqual({ url: "tls://h:1", user: "tok" });
    expect(redactUrl("nats://u:secret@h:4222")).toBe("nats://***@h:4222");
  });

  it("applies the priority user/pass > token and URL userinfo after explicit options", async () => {
    const a = await resolveAuth({ servers: "nats://u:p@h:1", token: "t" });
    expect(a.kind).toBe("user/pass");
    expect(a.options).toEqual({ user: "u", pass: "p" });
    expect(a.servers).toEqual(["nats://h:1"]);
    const b = await resolveAuth({ servers: "nats://u:p@h:1", user: "x", pass: "y" });
    expect(b.options).toEqual({ user: "x", pass: "y" });
    const c = await resolveAuth({ servers: ["nats://tok@h:1"] });
    expect(c).toMatchObject({ kind: "token", options: { token: "tok" } });
    const d = await resolveAuth({ servers: "h:1" });
    expect(d.kind).toBe("none");
  });

  it("refuses unusable server lists", async () => {
    await expect(resolveAuth({ servers: [] })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(resolveAuth({ servers: "nats://[::1" })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });
});

describe("decoding and helpers", () => {
  it("maps markers to update types and keeps stream sequences as versions", () => {
    const h = (op?: string) => ({ get: (k: string) => (k === "KV-Operation" ? (op ?? "") : "") }) as never;
    expect(toUpdate("k", 7, h("DEL"), new Uint8Array())).toMatchObject({ type: "delete", key: "k" });
    expect(toUpdate("k", 8, h("PURGE"), new Uint8Array()).type).toBe("purge");
    const put = toUpdate("k", 9, undefined, new Uint8Array());
    expect(put.type === "put" && put.entry.value.length === 0 && put.entry.version.revision === 9n).toBe(true);
    expect(keyOf(P, "$KV.b.a.b")).toBe("a.b");
    expect(keyOf(P, "$KV.other.a")).toBeUndefined();
    expect(keyOf(P, "$KV.b.")).toBeUndefined();
  });

  it("compares server versions and sizes pull requests for the stall bound", () => {
    expect(versionAtLeast("2.10.27", 2, 10)).toBe(true);
    expect(versionAtLeast("2.9.10", 2, 10)).toBe(false);
    expect(versionAtLeast("3.0.0", 2, 10)).toBe(true);
    expect(versionAtLeast(undefined, 2, 10)).toBe(false);
    expect(pullExpiresMs(30_000)).toBe(10_000);
    expect(pullExpiresMs(4_000)).toBe(2_000);
    expect(pullExpiresMs(100)).toBe(1_000);
  });
});
