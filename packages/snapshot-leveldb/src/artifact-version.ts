/**
 * The artifact `backendVersion` of a LevelDB fold: `<fold generation>.<artifact layout>`.
 *
 * | backendVersion | payload under `data/` | written by |
 * | --- | --- | --- |
 * | `"1"` | a fresh, compacted LevelDB holding a record-by-record copy of the fold | releases before the checkpoint export |
 * | `"1.2"` | a file checkpoint of the live LevelDB: its table files, MANIFEST, CURRENT and write-ahead log | this version |
 *
 * Both layouts are a LevelDB directory that opens as a fold of the named generation, so this
 * version imports both; an unknown layout or generation is refused with `ARTIFACT_INVALID`
 * before a byte is copied. The layout is bumped so that readers which predate it refuse a
 * checkpoint artifact with a clear error instead of importing it with assumptions of their own.
 */
import { FORMAT_GENERATION, READABLE_GENERATIONS } from "./format.js";

/** The artifact layout this version writes. */
export const ARTIFACT_LAYOUT = 2;

/** The artifact `backendVersion` this version writes. */
export const ARTIFACT_VERSION = `${FORMAT_GENERATION}.${ARTIFACT_LAYOUT}`;

/** Every artifact `backendVersion` this version imports: both layouts of every readable generation. */
export const READABLE_ARTIFACT_VERSIONS: readonly string[] = READABLE_GENERATIONS.flatMap((g) => [
  g,
  `${g}.${ARTIFACT_LAYOUT}`,
]);
