/** Fault injection: a SnapshotStore wrapper whose commits fail on demand. */

import type { ExportManifest, ExportOptions, KvEntry, KvUpdate, SnapshotStore, WatchCursor } from "@slipstream/core";
import { SlipstreamError } from "@slipstream/core";

export class FlakyStore implements SnapshotStore {
  /** Fail this many upcoming apply calls. */
  failNext = 0;
  /** Fail every apply while true. */
  failAlways = false;
  /** Every apply attempt: batch size, cursor hex and whether it failed. */
  readonly attempts: { size: number; cursor: string; failed: boolean }[] = [];

  constructor(readonly inner: SnapshotStore) {}

  get backend(): string {
    return this.inner.backend;
  }

  get cursor(): WatchCursor {
    return this.inner.cursor;
  }

  async apply(batch: readonly KvUpdate[], cursor: WatchCursor): Promise<void> {
    const fail = this.failAlways || this.failNext > 0;
    this.attempts.push({ size: batch.length, cursor: cursor.toHex(), failed: fail });
    if (fail) {
      if (this.failNext > 0) this.failNext--;
      throw new SlipstreamError("BACKEND", "injected store failure");
    }
    await this.inner.apply(batch, cursor);
  }

  get(key: string): Promise<KvEntry | undefined> {
    return this.inner.get(key);
  }

  range(prefix: string): AsyncIterable<KvEntry> {
    return this.inner.range(prefix);
  }

  exportTo(destDir: string, opts?: ExportOptions): Promise<ExportManifest> {
    return this.inner.exportTo(destDir, opts);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
