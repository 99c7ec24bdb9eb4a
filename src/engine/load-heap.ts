/**
 * An indexed binary min-heap of machine indices ordered by (load, index): the root is the
 * least-loaded machine, ties going to the lowest index (= lowest machine ID, machines being sorted
 * by ID). `update(m)` restores the order after machine m's load changed, in O(log machines), so
 * placing a unit with no placement rules costs O(log machines) instead of a scan.
 */
export class LoadHeap {
  private readonly heap: number[];
  private readonly pos: number[];

  constructor(private readonly load: readonly number[]) {
    this.heap = load.map((_, i) => i);
    this.pos = load.map((_, i) => i);
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  /** The least-loaded machine (lowest index among equals), or undefined when there is none. */
  peek(): number | undefined {
    return this.heap[0];
  }

  /** Call after `load[m]` changed. */
  update(m: number): void {
    const i = this.pos[m];
    if (i === undefined) return;
    this.up(i);
    this.down(this.pos[m] ?? i);
  }

  private less(a: number, b: number): boolean {
    const la = this.load[a] ?? 0;
    const lb = this.load[b] ?? 0;
    return la < lb || (la === lb && a < b);
  }

  private swap(i: number, j: number): void {
    const a = this.heap[i] as number;
    const b = this.heap[j] as number;
    this.heap[i] = b;
    this.heap[j] = a;
    this.pos[b] = i;
    this.pos[a] = j;
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(this.heap[i] as number, this.heap[parent] as number)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.heap.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      if (l < n && this.less(this.heap[l] as number, this.heap[smallest] as number)) smallest = l;
      if (r < n && this.less(this.heap[r] as number, this.heap[smallest] as number)) smallest = r;
      if (smallest === i) return;
      this.swap(i, smallest);
      i = smallest;
    }
  }
}
