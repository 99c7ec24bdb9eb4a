/**
 * Key order and the sorted key index.
 *
 * etcd orders keys by their UTF-8 bytes, which is Unicode code point order. JavaScript's `<` compares
 * UTF-16 code units, which disagrees for characters above U+FFFF (surrogate pairs, 0xD800–0xDFFF)
 * versus U+E000–U+FFFF. `compareKeys` fixes that up so ranges come back in etcd's order.
 *
 * `SortedKeys` is a chunked sorted list (a list of sorted arrays of at most 2×LOAD keys each, with each
 * chunk's last key kept in `maxes` for a binary search): insert and remove cost O(log n + LOAD), a
 * prefix scan O(log n + matches). At ~20k keys that is a few microseconds per write, where one flat
 * sorted array would move the whole tail on every create/delete.
 */

/** Map a UTF-16 code unit ≥ 0xD800 so that surrogates sort above U+E000–U+FFFF (code point order). */
function fix(c: number): number {
  return c >= 0xe000 ? c - 0x800 : c + 0x2000;
}

/** Compare two keys in UTF-8 byte order (= code point order). */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return x >= 0xd800 && y >= 0xd800 ? fix(x) - fix(y) : x - y;
  }
  return a.length - b.length;
}

const LOAD = 512;

export class SortedKeys {
  private chunks: string[][] = [];
  private maxes: string[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Build from keys in any order (duplicates are not allowed). */
  static from(keys: Iterable<string>): SortedKeys {
    const all = [...keys].sort(compareKeys);
    const s = new SortedKeys();
    for (let i = 0; i < all.length; i += LOAD) {
      const chunk = all.slice(i, i + LOAD);
      s.chunks.push(chunk);
      s.maxes.push(chunk[chunk.length - 1]!);
    }
    s.count = all.length;
    return s;
  }

  /** Index of the first chunk whose last key is ≥ key (may equal chunks.length). */
  private chunkFor(key: string): number {
    let lo = 0;
    let hi = this.maxes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(this.maxes[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private static lowerBound(chunk: string[], key: string): number {
    let lo = 0;
    let hi = chunk.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(chunk[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Insert a key that is not present. */
  insert(key: string): void {
    this.count++;
    if (this.chunks.length === 0) {
      this.chunks.push([key]);
      this.maxes.push(key);
      return;
    }
    let ci = this.chunkFor(key);
    if (ci === this.chunks.length) ci--; // larger than every key: append to the last chunk
    const chunk = this.chunks[ci]!;
    chunk.splice(SortedKeys.lowerBound(chunk, key), 0, key);
    this.maxes[ci] = chunk[chunk.length - 1]!;
    if (chunk.length > 2 * LOAD) {
      const tail = chunk.splice(LOAD);
      this.chunks.splice(ci + 1, 0, tail);
      this.maxes.splice(ci, 1, chunk[chunk.length - 1]!, tail[tail.length - 1]!);
    }
  }

  /** Remove a key; returns false when it was not present. */
  remove(key: string): boolean {
    const ci = this.chunkFor(key);
    const chunk = this.chunks[ci];
    if (!chunk) return false;
    const i = SortedKeys.lowerBound(chunk, key);
    if (chunk[i] !== key) return false;
    chunk.splice(i, 1);
    this.count--;
    if (chunk.length === 0) {
      this.chunks.splice(ci, 1);
      this.maxes.splice(ci, 1);
    } else {
      this.maxes[ci] = chunk[chunk.length - 1]!;
    }
    return true;
  }

  /** Keys starting with `prefix`, in order, at most `limit` of them. */
  withPrefix(prefix: string, limit = Infinity): string[] {
    const out: string[] = [];
    if (limit <= 0) return out;
    let ci = this.chunkFor(prefix);
    let i = ci < this.chunks.length ? SortedKeys.lowerBound(this.chunks[ci]!, prefix) : 0;
    for (; ci < this.chunks.length; ci++, i = 0) {
      const chunk = this.chunks[ci]!;
      for (; i < chunk.length; i++) {
        const k = chunk[i]!;
        if (!k.startsWith(prefix)) return out;
        out.push(k);
        if (out.length >= limit) return out;
      }
    }
    return out;
  }

  *[Symbol.iterator](): IterableIterator<string> {
    for (const chunk of this.chunks) yield* chunk;
  }
}
