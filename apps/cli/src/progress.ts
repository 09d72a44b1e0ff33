/**
 * Progress bars for long transfers (cli-progress), drawn on stderr only when it is a
 * terminal: bytes done of total, rate and ETA, one bar per phase (download, import, verify).
 */
import type { Progress, ProgressFn } from "@slipstream/core";
import { SingleBar } from "cli-progress";
import { type CliIo, formatBytes, formatDuration } from "./output.js";

/** A progress reporter: `onProgress` for the library calls, `stop()` when done. */
export interface ProgressReporter {
  readonly onProgress: ProgressFn;
  stop(): void;
}

/** Draws progress on a TTY; silent otherwise. */
export function progressBar(io: CliIo, enabled: boolean): ProgressReporter {
  if (!enabled || !io.isTTY) return { onProgress: () => {}, stop: () => {} };
  let bar: SingleBar | undefined;
  let phase = "";
  let started = 0;
  const stop = () => {
    bar?.stop();
    bar = undefined;
  };
  const onProgress = (p: Progress) => {
    const total = p.bytesTotal ?? 0;
    if (p.phase !== phase) {
      stop();
      phase = p.phase;
      started = Date.now();
      bar = new SingleBar({
        stream: io.stderr as NodeJS.WritableStream,
        format: "{phase} |{bar}| {percentage}% {done}/{all} {rate}/s ETA {etaText}",
        barCompleteChar: "█",
        barIncompleteChar: "░",
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 50,
        fps: 10,
        // We decide whether stderr is a terminal (io.isTTY); draw even if the stream does not say so.
        noTTYOutput: true,
        notTTYSchedule: 250,
      });
      bar.start(Math.max(total, 1), 0, {
        phase: phase.padEnd(8),
        done: "0 B",
        all: formatBytes(total),
        rate: "0 B",
        etaText: "…",
      });
    }
    const elapsed = Math.max(1, Date.now() - started);
    const rate = (p.bytesDone / elapsed) * 1000;
    const eta = rate > 0 && total > p.bytesDone ? ((total - p.bytesDone) / rate) * 1000 : 0;
    if (total > 0) bar?.setTotal(total);
    bar?.update(p.bytesDone, {
      phase: phase.padEnd(8),
      done: formatBytes(p.bytesDone),
      all: formatBytes(total),
      rate: formatBytes(Math.round(rate)),
      etaText: formatDuration(eta),
    });
  };
  return { onProgress, stop };
}
