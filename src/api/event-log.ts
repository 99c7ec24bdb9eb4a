/**
 * The recent lines of the events stream, by registry revision, shared by every client (one bounded
 * ring per agent, not one per client), so that `GET /flotilla/v1/events?since=R` resumes after R
 * without a gap: a client that read a snapshot at revision R (GET /flotilla/v1/snapshot), or whose
 * stream broke after it saw R, gets exactly the lines with revision > R, then the live ones.
 *
 * INVARIANT: every line with revision > `floor` is still held. A line pushed out of the ring raises
 * `floor` to its revision; a view resync (compaction, or the first read) empties the ring and sets
 * `floor` to the new revision, since no line describes the jump. `since(R)` with R < floor, or with R
 * ahead of the last revision seen, cannot be replayed: the caller says `resync`.
 */
export class EventLog {
  private readonly revs: number[];
  private readonly lines: string[];
  private head = 0; // index of the oldest line
  private count = 0;
  /** Lines at or below this revision may be gone. */
  floor: number;
  /** The last revision pushed (or reset to). */
  last: number;

  constructor(
    revision: number,
    private readonly capacity = 10_000,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error('EventLog: capacity must be ≥ 1');
    this.revs = new Array<number>(capacity);
    this.lines = new Array<string>(capacity);
    this.floor = revision;
    this.last = revision;
  }

  get size(): number {
    return this.count;
  }

  push(revision: number, line: string): void {
    if (this.count === this.capacity) {
      this.floor = Math.max(this.floor, this.revs[this.head]!);
      this.head = (this.head + 1) % this.capacity;
      this.count--;
    }
    const i = (this.head + this.count) % this.capacity;
    this.revs[i] = revision;
    this.lines[i] = line;
    this.count++;
    if (revision > this.last) this.last = revision;
  }

  /** The view was read afresh at `revision`: nothing before it can be replayed. */
  reset(revision: number): void {
    this.head = 0;
    this.count = 0;
    this.lines.fill('');
    this.floor = revision;
    this.last = revision;
  }

  /** The lines after revision `r`, oldest first; undefined when they are not all held. */
  since(r: number): string[] | undefined {
    if (r < this.floor || r > this.last) return undefined;
    const out: string[] = [];
    for (let k = 0; k < this.count; k++) {
      const i = (this.head + k) % this.capacity;
      if (this.revs[i]! > r) out.push(this.lines[i]!);
    }
    return out;
  }
}
