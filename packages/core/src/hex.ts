const HEX_RE = /^[0-9a-fA-F]*$/;

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/**
 * Decodes hex (either case) or returns a reason it is not hex. Never silently drops an odd
 * trailing nibble the way `Buffer.from(s, "hex")` does.
 */
export function parseHex(text: string): Uint8Array | string {
  if (text.length % 2 !== 0) return `odd number of hex digits (${text.length})`;
  if (!HEX_RE.test(text)) return "not hexadecimal";
  return new Uint8Array(Buffer.from(text, "hex"));
}
