import { CliError, EXIT, type ExitCode } from "../exit.js";
import { openExistingFold } from "../fold.js";
import { type CliIo, formatBytes, printFields, printJson } from "../output.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The value as text when it is valid UTF-8 without control characters other than whitespace. */
export function asText(value: Uint8Array): string | undefined {
  try {
    const text = utf8.decode(value);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: binary detection
    return /[\u0000-\u0008\u000e-\u001f\u007f]/.test(text) ? undefined : text;
  } catch {
    return undefined;
  }
}

/** `get <foldDir> <key>`: one entry of the fold. */
export async function getCommand(
  io: CliIo,
  dir: string,
  key: string,
  opts: { json?: boolean; raw?: boolean },
): Promise<ExitCode> {
  const store = await openExistingFold(dir);
  try {
    const entry = await store.get(key);
    if (!entry) {
      const err = new CliError(EXIT.PROBLEM, "KEY_NOT_FOUND", `key ${JSON.stringify(key)} is not in the fold ${dir}`);
      throw err;
    }
    const text = asText(entry.value);
    if (opts.raw) {
      io.stdout.write(entry.value);
      return EXIT.OK;
    }
    if (opts.json) {
      printJson(io, {
        key,
        revision: entry.version.revision ?? null,
        version: entry.version.toHex(),
        size: entry.value.byteLength,
        value: text ?? null,
        valueBase64: Buffer.from(entry.value).toString("base64"),
      });
    } else {
      printFields(io, [
        ["key", key],
        ["revision", entry.version.revision?.toString() ?? `unknown (version ${entry.version.toHex()})`],
        ["size", formatBytes(entry.value.byteLength)],
        ["value", text ?? `(binary, base64) ${Buffer.from(entry.value).toString("base64")}`],
      ]);
    }
    return EXIT.OK;
  } finally {
    await store.close();
  }
}
