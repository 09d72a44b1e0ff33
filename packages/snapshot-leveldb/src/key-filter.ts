/**
 * A compact, insert-only set of 32-bit key fingerprints that answers "might this key be in
 * the fold?". It lets `apply` skip the LevelDB lookup that keeps the entry count exact for
 * keys that were never written since the fold was empty — a hydration or a full replay,
 * where every key is new.
 *
 * Exact count: a "no" must be right, a "maybe" may be wrong (it only costs the lookup the
 * store would have done anyway). So fingerprints are never removed — a delete leaves its
 * key's fingerprint, and two keys may share one — and the filter is only "complete" (its
 * "no" trusted) when it started on an empty fold and saw every key written since. Past
 * {@link MAX_TRACKED_KEYS} distinct keys it gives up (every answer becomes "maybe") rather
 * than grow without bound.
 */

/** Distinct keys tracked at most (a table of 2× that many 4-byte slots: 32 MiB). */
export const MAX_TRACKED_KEYS = 4 * 1024 * 1024;
const INITIAL_SLOTS = 1 << 12;

/** FNV-1a over the UTF-16 code units, never 0 (0 marks an empty slot). */
function fingerprint(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // Final avalanche (murmur3 fmix32) so that the low bits used as the slot index are mixed.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h === 0 ? 1 : h >>> 0;
}

/** See the module comment. */
export class KeyFilter {
  #slots = new Uint32Array(INITIAL_SLOTS);
  #size = 0;
  #complete: boolean;
  readonly #maxKeys: number;

  /**
   * `complete`: the fold holds no key yet, so every "no" from now on is exact. Past
   * `maxKeys` distinct keys the filter abandons itself.
   */
  constructor(complete: boolean, maxKeys = MAX_TRACKED_KEYS) {
    this.#complete = complete;
    this.#maxKeys = maxKeys;
  }

  /** Distinct fingerprints held. */
  get size(): number {
    return this.#size;
  }

  /** True while a "no" is exact. */
  get complete(): boolean {
    return this.#complete;
  }

  /** False only when `key` was certainly never added (and the filter is complete). */
  mightContain(key: string): boolean {
    if (!this.#complete) return true;
    const fp = fingerprint(key);
    const slots = this.#slots;
    const mask = slots.length - 1;
    for (let i = fp & mask; ; i = (i + 1) & mask) {
      const s = slots[i] as number;
      if (s === 0) return false;
      if (s === fp) return true;
    }
  }

  /**
   * `mightContain` and `add` in one probe: false (and nothing added) when `key` might
   * already be there, else records it and returns true — `key` was certainly absent.
   */
  addIfNew(key: string): boolean {
    if (!this.#complete) return false;
    if (!this.#insert(fingerprint(key))) return false;
    if (this.#size * 2 > this.#slots.length) this.#grow();
    return true;
  }

  /** Records that `key` may now be in the fold. */
  add(key: string): void {
    if (!this.#complete) return;
    if (this.#insert(fingerprint(key)) && this.#size * 2 > this.#slots.length) this.#grow();
  }

  /** Forgets everything: every later answer is "maybe". */
  abandon(): void {
    this.#complete = false;
    this.#slots = new Uint32Array(0);
    this.#size = 0;
  }

  #insert(fp: number): boolean {
    const slots = this.#slots;
    const mask = slots.length - 1;
    for (let i = fp & mask; ; i = (i + 1) & mask) {
      const s = slots[i] as number;
      if (s === fp) return false;
      if (s === 0) {
        slots[i] = fp;
        this.#size++;
        return true;
      }
    }
  }

  #grow(): void {
    if (this.#size >= this.#maxKeys) {
      this.abandon();
      return;
    }
    const old = this.#slots;
    this.#slots = new Uint32Array(old.length * 2);
    this.#size = 0;
    for (const fp of old) if (fp !== 0) this.#insert(fp);
  }
}
