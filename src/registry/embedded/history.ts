/**
 * Bounded history of recent revisions, for watches that resume from a revision.
 *
 * Every revision has one entry (a revision always changes at least one key), so the entries are
 * contiguous: they cover [start, start + length). Older entries are dropped past `max` revisions;
 * asking for a revision before `start` is E_REGISTRY_COMPACTED. After a restart the history starts
 * just after the snapshot the store was loaded from (the log records after it are replayed into it).
 */
import type { WatchEvent } from '../kv.js';

export interface RevisionEntry {
  revision: number;
  /** All changes of the revision, each with its prevKv when the key existed before. */
  events: WatchEvent[];
}

export class History {
  private entries: RevisionEntry[] = [];
  private head = 0;
  private first: number;

  /** `next`: the first revision that will be pushed (current revision + 1). */
  constructor(
    private readonly max: number,
    next: number,
  ) {
    this.first = next;
  }

  /** The oldest revision still available; watching from before it is compacted. */
  get start(): number {
    return this.first;
  }

  push(entry: RevisionEntry): void {
    const expected = this.first + (this.entries.length - this.head);
    if (entry.revision !== expected) {
      throw new Error(`history: revision ${entry.revision} pushed, expected ${expected}`);
    }
    this.entries.push(entry);
    if (this.entries.length - this.head > this.max) {
      this.head++;
      this.first++;
      // Drop the consumed prefix now and then, so pushes stay O(1) amortized.
      if (this.head >= 1024 && this.head * 2 >= this.entries.length) {
        this.entries = this.entries.slice(this.head);
        this.head = 0;
      }
    }
  }

  /** Drop the revisions before `revision` (etcd's Compact): watching from them is then compacted. */
  compact(revision: number): void {
    const drop = Math.min(revision - this.first, this.entries.length - this.head);
    if (drop <= 0) return;
    this.head += drop;
    this.first += drop;
    this.entries = this.entries.slice(this.head);
    this.head = 0;
  }

  /** Entries with from ≤ revision ≤ to, oldest first (from must be ≥ start). */
  slice(from: number, to: number): RevisionEntry[] {
    const lo = this.head + Math.max(0, from - this.first);
    const hi = this.head + (to - this.first) + 1;
    return this.entries.slice(lo, Math.max(lo, Math.min(hi, this.entries.length)));
  }
}
