#!/usr/bin/env node
// Checks the dependency hygiene of the workspace (packages/* and apps/*).
//
//   node scripts/check-deps.mjs [rootDir]      (rootDir defaults to this repository)
//
// (a) Every bare module imported in src/ or test/ (static import, `export ... from`, dynamic
//     `import("...")`, `require("...")`) must be declared by the importing package:
//       - src/  : dependencies, peerDependencies or optionalDependencies
//       - test/ : the above or devDependencies; `vitest` (a root devDependency) is always allowed
//     Node builtins (`node:*` and bare builtin names) and relative imports are always fine.
// (b) The arrows of DESIGN.md point downward:
//       - @slipstream/core has no runtime dependency at all (Node builtins only);
//       - @slipstream/fold, lease, transport and snapshot-leveldb neither depend on nor import
//         (in src/) @slipstream/nats — only their test/ may use it, as a devDependency;
//       - @slipstream/transport-* depend at runtime only on @slipstream/transport,
//         @slipstream/core and one SDK (one npm scope such as @aws-sdk/*, or one package);
//       - no package's src/ or runtime dependencies use @slipstream/testkit (private apps may);
//       - runtime dependencies between workspace packages form no cycle.
//
// Exit code 0 when clean, 1 with one line per violation otherwise.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SOURCE_EXT = /\.(?:[cm]?[jt]sx?)$/;
const ALWAYS_OK_IN_TESTS = new Set(["vitest"]);
const NO_NATS = new Set([
  "@slipstream/fold",
  "@slipstream/lease",
  "@slipstream/transport",
  "@slipstream/snapshot-leveldb",
]);
const CORE = "@slipstream/core";
const NATS = "@slipstream/nats";
const TESTKIT = "@slipstream/testkit";
const TRANSPORT = "@slipstream/transport";
const BUILTINS = new Set(builtinModules);

// ---------------------------------------------------------------------------
// A small JS/TS tokenizer: enough to tell code from strings, comments, templates and
// regular expressions, so that text inside them never counts as an import.

const REGEX_AFTER_WORD = new Set([
  "return",
  "typeof",
  "instanceof",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "case",
  "do",
  "else",
  "yield",
  "await",
]);

/** @returns {{ type: "id" | "str" | "punct" | "num" | "tpl" | "regex", value: string, line: number }[]} */
export function tokenize(src) {
  const tokens = [];
  let i = 0;
  let line = 1;
  const n = src.length;
  // Each entry is the brace depth at which a template `${` expression was opened.
  const templateStack = [];
  let braceDepth = 0;

  const prevSignificant = () => tokens[tokens.length - 1];
  const regexAllowed = () => {
    const p = prevSignificant();
    if (!p) return true;
    if (p.type === "id") return REGEX_AFTER_WORD.has(p.value);
    if (p.type === "punct") return !(p.value === ")" || p.value === "]" || p.value === "}");
    return false;
  };

  /** Scans template text from i (just after ` or }) to the closing ` or a `${`. */
  const scanTemplate = (startLine) => {
    let value = "";
    while (i < n) {
      const c = src[i];
      if (c === "\\") {
        value += src.slice(i, i + 2);
        if (src[i + 1] === "\n") line++;
        i += 2;
        continue;
      }
      if (c === "`") {
        i++;
        tokens.push({ type: "tpl", value, line: startLine });
        return;
      }
      if (c === "$" && src[i + 1] === "{") {
        i += 2;
        tokens.push({ type: "tpl", value, line: startLine });
        templateStack.push(braceDepth);
        braceDepth++;
        return;
      }
      if (c === "\n") line++;
      value += c;
      i++;
    }
    tokens.push({ type: "tpl", value, line: startLine });
  };

  while (i < n) {
    const c = src[i];
    if (c === "\n") {
      line++;
      i++;
      continue;
    }
    if (c === " " || c === "\t" || c === "\r" || c === "\f" || c === "\v" || c === "\uFEFF") {
      i++;
      continue;
    }
    if (c === "/" && src[i + 1] === "/") {
      while (i < n && src[i] !== "\n") i++;
      continue;
    }
    if (c === "/" && src[i + 1] === "*") {
      const end = src.indexOf("*/", i + 2);
      const stop = end < 0 ? n : end + 2;
      for (let k = i; k < stop; k++) if (src[k] === "\n") line++;
      i = stop;
      continue;
    }
    if (c === "#" && i === 0 && src[1] === "!") {
      while (i < n && src[i] !== "\n") i++;
      continue;
    }
    if (c === '"' || c === "'") {
      const startLine = line;
      let value = "";
      i++;
      while (i < n && src[i] !== c && src[i] !== "\n") {
        if (src[i] === "\\") {
          value += src[i + 1] ?? "";
          if (src[i + 1] === "\n") line++;
          i += 2;
          continue;
        }
        value += src[i];
        i++;
      }
      i++;
      tokens.push({ type: "str", value, line: startLine });
      continue;
    }
    if (c === "`") {
      i++;
      scanTemplate(line);
      continue;
    }
    if (c === "}" && templateStack.length && templateStack[templateStack.length - 1] === braceDepth - 1) {
      templateStack.pop();
      braceDepth--;
      i++;
      scanTemplate(line);
      continue;
    }
    if (/[A-Za-z_$\u0080-\uFFFF]/.test(c)) {
      let j = i + 1;
      while (j < n && /[\w$\u0080-\uFFFF]/.test(src[j])) j++;
      tokens.push({ type: "id", value: src.slice(i, j), line });
      i = j;
      continue;
    }
    if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(src[i + 1] ?? ""))) {
      let j = i + 1;
      while (j < n && /[\w.]/.test(src[j])) j++;
      tokens.push({ type: "num", value: src.slice(i, j), line });
      i = j;
      continue;
    }
    if (c === "/" && regexAllowed()) {
      let j = i + 1;
      let inClass = false;
      while (j < n && src[j] !== "\n") {
        const d = src[j];
        if (d === "\\") {
          j += 2;
          continue;
        }
        if (d === "[") inClass = true;
        else if (d === "]") inClass = false;
        else if (d === "/" && !inClass) break;
        j++;
      }
      j++;
      while (j < n && /[a-z]/i.test(src[j])) j++;
      tokens.push({ type: "regex", value: src.slice(i, j), line });
      i = j;
      continue;
    }
    if (c === "{") braceDepth++;
    else if (c === "}") braceDepth--;
    tokens.push({ type: "punct", value: c, line });
    i++;
  }
  return tokens;
}

const STATEMENT_START = new Set([
  "import",
  "export",
  "const",
  "let",
  "var",
  "function",
  "class",
  "interface",
  "type",
  "enum",
]);

/** Module specifiers a file loads: [{ spec, line, kind }]. */
export function findImports(src) {
  const t = tokenize(src);
  const out = [];
  const isId = (k, v) => t[k]?.type === "id" && (v === undefined || t[k].value === v);
  const isPunct = (k, v) => t[k]?.type === "punct" && t[k].value === v;
  // A template only counts when it is whole (no `${}`): then the next token closes the call.
  const isStr = (k) => t[k]?.type === "str" || t[k]?.type === "tpl";
  const afterDot = (k) => isPunct(k - 1, ".") || isPunct(k - 1, "?");

  /** From k, scans to `from "<spec>"` within the statement; returns the str index or -1. */
  const scanFrom = (k) => {
    for (let m = k; m < t.length && m < k + 2000; m++) {
      if (isId(m, "from") && t[m + 1]?.type === "str") return m + 1;
      if (isPunct(m, ";") || isPunct(m, "=") || isPunct(m, "(")) return -1;
      // A new statement begins: this one had no `from`. (`type` may appear inside braces:
      // import { type A } from "x".)
      if (
        m > k &&
        t[m].type === "id" &&
        STATEMENT_START.has(t[m].value) &&
        !isPunct(m - 1, ",") &&
        !isPunct(m - 1, "{")
      ) {
        return -1;
      }
    }
    return -1;
  };

  for (let k = 0; k < t.length; k++) {
    const tok = t[k];
    if (tok.type !== "id" || afterDot(k)) continue;
    if (tok.value === "import") {
      if (isPunct(k + 1, ".")) continue; // import.meta
      if (isPunct(k + 1, "(")) {
        if (isStr(k + 2) && (isPunct(k + 3, ")") || isPunct(k + 3, ","))) {
          out.push({ spec: t[k + 2].value, line: t[k + 2].line, kind: "dynamic" });
        }
        continue;
      }
      if (t[k + 1]?.type === "str") {
        out.push({ spec: t[k + 1].value, line: t[k + 1].line, kind: "side-effect" });
        continue;
      }
      const s = scanFrom(k + 1);
      if (s >= 0) out.push({ spec: t[s].value, line: t[s].line, kind: "import" });
      continue;
    }
    if (tok.value === "export") {
      let m = k + 1;
      if (isId(m, "type")) m++;
      if (!(isPunct(m, "*") || isPunct(m, "{"))) continue;
      const s = scanFrom(m);
      if (s >= 0) out.push({ spec: t[s].value, line: t[s].line, kind: "export" });
      continue;
    }
    if (tok.value === "require" && isPunct(k + 1, "(") && isStr(k + 2) && isPunct(k + 3, ")")) {
      out.push({ spec: t[k + 2].value, line: t[k + 2].line, kind: "require" });
    }
  }
  return out;
}

/** "@scope/name/sub" → "@scope/name"; "name/sub" → "name"; relative/builtin → undefined. */
export function packageOf(spec) {
  if (spec.startsWith(".") || spec.startsWith("/") || spec.startsWith("#") || spec === "") return undefined;
  if (spec.startsWith("node:") || BUILTINS.has(spec) || BUILTINS.has(spec.split("/")[0])) return undefined;
  if (/^[a-z]+:/i.test(spec)) return undefined; // data:, file:, https: …
  const parts = spec.split("/");
  return spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

// ---------------------------------------------------------------------------

function listFiles(dir) {
  const out = [];
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e.name === "node_modules" || e.name === "dist" || e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else if (e.isFile() && SOURCE_EXT.test(e.name)) out.push(p);
  }
  return out;
}

function readMembers(root) {
  const members = [];
  for (const group of ["packages", "apps"]) {
    let names = [];
    try {
      names = readdirSync(join(root, group)).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      const dir = join(root, group, name);
      const pj = join(dir, "package.json");
      try {
        if (!statSync(dir).isDirectory()) continue;
        statSync(pj);
      } catch {
        continue;
      }
      let pkg;
      try {
        pkg = JSON.parse(readFileSync(pj, "utf8"));
      } catch (err) {
        members.push({ dir, group, name: `${group}/${name}`, broken: String(err) });
        continue;
      }
      const keys = (o) => new Set(Object.keys(o ?? {}));
      members.push({
        dir,
        group,
        name: pkg.name ?? `${group}/${name}`,
        private: pkg.private === true,
        deps: keys(pkg.dependencies),
        dev: keys(pkg.devDependencies),
        peer: keys(pkg.peerDependencies),
        optional: keys(pkg.optionalDependencies),
      });
    }
  }
  return members;
}

export function checkWorkspace(root) {
  const problems = [];
  const members = readMembers(root);
  const byName = new Map(members.map((m) => [m.name, m]));
  let fileCount = 0;
  const where = (file, line) => `${relative(root, file)}:${line}`;

  for (const m of members) {
    if (m.broken) {
      problems.push(`${relative(root, m.dir)}/package.json: unreadable (${m.broken})`);
      continue;
    }
    const runtime = new Set([...m.deps, ...m.peer, ...m.optional]);
    const pj = `${relative(root, m.dir)}/package.json`;
    const testkitForbidden = m.group === "packages" ? m.name !== TESTKIT : !m.private;

    // (b) on package.json
    if (m.name === CORE && runtime.size > 0) {
      problems.push(
        `${pj}: ${CORE} must have no runtime dependencies (Node builtins only), found: ${[...runtime].join(", ")}`,
      );
    }
    if (NO_NATS.has(m.name) && runtime.has(NATS)) {
      problems.push(
        `${pj}: ${m.name} must not depend on ${NATS} at runtime (talk to the KV through the ${CORE} interfaces; use it as a devDependency in test/ only)`,
      );
    }
    if (/^@slipstream\/transport-/.test(m.name)) {
      const sdk = [...runtime].filter((d) => d !== TRANSPORT && d !== CORE);
      const ours = sdk.filter((d) => d.startsWith("@slipstream/"));
      for (const d of ours) {
        problems.push(
          `${pj}: transport package ${m.name} may depend at runtime only on ${TRANSPORT}, ${CORE} and its SDK, not on ${d}`,
        );
      }
      const foreign = sdk.filter((d) => !d.startsWith("@slipstream/"));
      const families = new Set(foreign.map((d) => (d.startsWith("@") ? d.split("/")[0] : d)));
      if (families.size > 1) {
        problems.push(
          `${pj}: transport package ${m.name} may use one SDK (one npm scope or one package), found: ${foreign.join(", ")}`,
        );
      }
    }
    if (testkitForbidden && runtime.has(TESTKIT)) {
      problems.push(`${pj}: ${m.name} must not depend on the private ${TESTKIT} at runtime (devDependencies only)`);
    }

    // (a) and (b) on the code
    for (const kind of ["src", "test"]) {
      for (const file of listFiles(join(m.dir, kind))) {
        fileCount++;
        let text;
        try {
          text = readFileSync(file, "utf8");
        } catch (err) {
          problems.push(`${relative(root, file)}: unreadable (${err})`);
          continue;
        }
        for (const imp of findImports(text)) {
          const dep = packageOf(imp.spec);
          if (dep === undefined || dep === m.name) continue;
          const at = where(file, imp.line);
          if (kind === "src") {
            if (m.name === CORE) {
              problems.push(`${at}: ${CORE} src imports "${imp.spec}"; core may import Node builtins only`);
              continue;
            }
            if (NO_NATS.has(m.name) && dep === NATS) {
              problems.push(
                `${at}: ${m.name} src imports "${imp.spec}"; it must not use ${NATS} (DESIGN.md: depend on ${CORE} interfaces only)`,
              );
              continue;
            }
            if (testkitForbidden && dep === TESTKIT) {
              problems.push(`${at}: ${m.name} src imports the private ${TESTKIT}; only tests may use it`);
              continue;
            }
            if (!runtime.has(dep)) {
              const hint = m.dev.has(dep) ? " (it is only a devDependency, which users do not install)" : "";
              problems.push(
                `${at}: imports "${imp.spec}" but ${m.name} does not declare "${dep}" in dependencies/peerDependencies${hint}`,
              );
            }
          } else if (!runtime.has(dep) && !m.dev.has(dep) && !ALWAYS_OK_IN_TESTS.has(dep)) {
            problems.push(
              `${at}: imports "${imp.spec}" but ${m.name} does not declare "${dep}" (add it to devDependencies)`,
            );
          }
        }
      }
    }
  }

  // (b) no cycles among runtime workspace dependencies
  const graph = new Map(
    members
      .filter((m) => !m.broken)
      .map((m) => [m.name, [...m.deps, ...m.peer, ...m.optional].filter((d) => byName.has(d))]),
  );
  const state = new Map();
  const stack = [];
  const seen = new Set();
  const visit = (name) => {
    state.set(name, "open");
    stack.push(name);
    for (const d of graph.get(name) ?? []) {
      if (state.get(d) === "open") {
        const cycle = [...stack.slice(stack.indexOf(d)), d].join(" -> ");
        if (!seen.has(cycle)) {
          seen.add(cycle);
          problems.push(`runtime dependency cycle: ${cycle}`);
        }
      } else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(name, "done");
  };
  for (const name of graph.keys()) if (!state.has(name)) visit(name);

  return { problems, packages: members.length, files: fileCount };
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), ".."));
  const { problems, packages, files } = checkWorkspace(root);
  if (packages === 0) {
    console.error(`check-deps: no packages found under ${root}/packages or ${root}/apps`);
    process.exit(1);
  }
  if (problems.length > 0) {
    console.error(`check-deps: ${problems.length} problem(s) in ${packages} packages:`);
    for (const p of problems) console.error(`  ${p}`);
    process.exit(1);
  }
  console.log(`check-deps: ok (${packages} packages, ${files} files)`);
}
