/**
 * Output that reads well on a terminal and in a log file: on a TTY a live line is redrawn in
 * place; otherwise no control codes at all, and a live line is printed at most once a second.
 */

/** Whether stdout is a terminal (redraw in place) or a pipe/file (plain lines). */
export const isTty = process.stdout.isTTY === true;

let pendingLive = false;

/** Prints a line (ending a live line first). */
export function say(line = ""): void {
  if (pendingLive) {
    process.stdout.write("\n");
    pendingLive = false;
  }
  process.stdout.write(`${line}\n`);
}

/** A line that is redrawn while something runs (TTY), or printed now and then (log file). */
export function liveLine(minIntervalMs = 1000): { update: (text: string) => void; done: (text?: string) => void } {
  let last = 0;
  let latest = "";
  return {
    update(text) {
      latest = text;
      if (isTty) {
        process.stdout.write(`\r${text}\x1b[K`);
        pendingLive = true;
      } else if (performance.now() - last >= minIntervalMs) {
        last = performance.now();
        process.stdout.write(`${text}\n`);
      }
    },
    done(text) {
      const final = text ?? latest;
      if (isTty) {
        if (final) process.stdout.write(`\r${final}\x1b[K\n`);
        else if (pendingLive) process.stdout.write("\n");
        pendingLive = false;
      } else if (final) process.stdout.write(`${final}\n`);
    },
  };
}

/** 12345 → "12,345". */
export function n(value: number | bigint): string {
  return value.toLocaleString("en-US");
}

/** Milliseconds → "850 ms" / "1.24 s". */
export function ms(value: number): string {
  return value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(2)} s`;
}

/** A plain-text table: columns padded, numbers right-aligned. */
export function table(head: string[], rows: string[][], right: ReadonlySet<number>): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [fmt(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(fmt)];
}

/** Resolves after `delayMs`. */
export function sleep(delayMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, delayMs));
}
