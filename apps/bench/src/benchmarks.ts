/** The registry of benchmarks, in the order a full run executes them. */
import { benchBootstrap } from "./bench-bootstrap.js";
import { benchDownload } from "./bench-download.js";
import { benchFold } from "./bench-fold.js";
import { benchHydrate } from "./bench-hydrate.js";
import { benchResume } from "./bench-resume.js";
import { benchTransfer } from "./bench-transfer.js";
import type { BenchOptions } from "./options.js";
import type { BenchResult } from "./result.js";

/** One runnable benchmark. */
export interface Benchmark {
  readonly id: string;
  readonly run: (o: BenchOptions) => Promise<BenchResult>;
}

/** All benchmarks: fold, resume, hydrate, transfer, bootstrap, download. */
export const BENCHMARKS: readonly Benchmark[] = [
  { id: "fold", run: benchFold },
  { id: "resume", run: benchResume },
  { id: "hydrate", run: benchHydrate },
  { id: "transfer", run: benchTransfer },
  { id: "bootstrap", run: benchBootstrap },
  { id: "download", run: benchDownload },
];
