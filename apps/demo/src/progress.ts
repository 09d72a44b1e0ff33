import type { Progress } from "@slipstream/core";

const WIDTH = 28;

function human(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Draws a one-line progress bar on a TTY (a final line otherwise). */
export function progressBar(label: string): { update: (p: Progress) => void; done: () => void } {
  const tty = process.stdout.isTTY === true;
  let last: Progress | undefined;
  const draw = (p: Progress) => {
    const total = p.bytesTotal ?? 0;
    const frac = total > 0 ? Math.min(1, p.bytesDone / total) : 0;
    const filled = Math.round(frac * WIDTH);
    const bar = `${"█".repeat(filled)}${"░".repeat(WIDTH - filled)}`;
    const size = total > 0 ? `${human(p.bytesDone)} / ${human(total)}` : human(p.bytesDone);
    return `    ${label.padEnd(9)} ${bar} ${size} (${p.phase})`;
  };
  return {
    update: (p) => {
      last = p;
      if (tty) process.stdout.write(`\r${draw(p)}\x1b[K`);
    },
    done: () => {
      if (last) process.stdout.write(tty ? `\r${draw(last)}\x1b[K\n` : `${draw(last)}\n`);
    },
  };
}
