/**
 * Pushed unit state: turns `PropertiesChanged` signals into typed `UnitEvent` streams.
 *
 * INVARIANTS
 * - No polling. Signals drive everything; the only D-Bus calls are (a) one fetch (GetAll) the first
 *   time a watched unit is seen or when systemd invalidates a property instead of sending its value,
 *   and (b) the safety-net resync: one `ListUnitsByNames`/`ListUnits` per interval (default 60 s),
 *   plus a fetch for each unit whose LOAD/ACTIVE/SUB differs from what we hold. Resync also runs after
 *   a reconnect and after a daemon-reload, when signals may have been missed.
 * - Ordering: while a fetch is in flight, signals for that unit are buffered with their stream
 *   position; those newer than the fetch reply are applied on top of it, older ones are dropped (the
 *   reply already includes them).
 * - systemd sends one PropertiesChanged per interface (Unit, Service …) for one transition; changes are
 *   coalesced per unit until the next turn of the event loop, so one transition is usually one event.
 * - An event is emitted only when a field actually changed. `state` is always the full state.
 * - UnitRemoved is ignored on purpose: systemd garbage-collects inactive units constantly (even ones
 *   we just read), and a collected unit loads again as inactive/dead, so the last state stays valid.
 *   A unit whose file went away shows up as `not-found` at the resync after the reload.
 */
import { AsyncQueue } from '../lib/queue.js';
import type { UnitEvent, UnitState, UnitSummary, UnitWatch, WatchOptions } from './manager.js';
import { PROPERTY_FIELDS, applyProperties, emptyState } from './properties.js';

export interface WatchSource {
  /** GetAll of the unit's properties; `seq` is the reply's position in the bus message stream. */
  fetch(name: string): Promise<{ props: Record<string, unknown>; seq: number }>;
  /** One call: these units' LOAD/ACTIVE/SUB. */
  list(names: readonly string[]): Promise<UnitSummary[]>;
  /** One call: every loaded unit. */
  listAll(): Promise<UnitSummary[]>;
}

export interface WatchHubOptions {
  resyncIntervalMs?: number;
  log?: (msg: string, fields: Record<string, unknown>) => void;
}

interface Watcher {
  filter: ReadonlySet<string> | null;
  queue: AsyncQueue<UnitEvent>;
}

interface Fetching {
  promise: Promise<void>;
  buffer: { seq: number; props: Record<string, unknown> }[];
}

export class WatchHub {
  readonly stats = { fetches: 0, resyncs: 0, events: 0 };
  private readonly watchers = new Set<Watcher>();
  private readonly cache = new Map<string, UnitState>();
  private readonly fetching = new Map<string, Fetching>();
  private readonly dirty = new Map<string, { fields: Set<keyof UnitState>; at: number }>();
  private flushScheduled = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private resyncing: Promise<void> | undefined;
  private readonly resyncIntervalMs: number;
  private readonly log: NonNullable<WatchHubOptions['log']>;

  constructor(
    private readonly source: WatchSource,
    opts: WatchHubOptions = {},
  ) {
    this.resyncIntervalMs = opts.resyncIntervalMs ?? 60_000;
    this.log = opts.log ?? (() => undefined);
  }

  get active(): boolean {
    return this.watchers.size > 0;
  }

  /** Names must already be validated. */
  watch(opts: WatchOptions = {}): UnitWatch {
    const filter = opts.units ? new Set(opts.units) : null;
    const w: Watcher = {
      filter,
      queue: new AsyncQueue<UnitEvent>(() => this.remove(w)),
    };
    this.watchers.add(w);
    this.startTimer();
    if (filter) {
      for (const name of filter) {
        const ready =
          this.cache.has(name) && !this.fetching.has(name) ? Promise.resolve() : this.startFetch(name, false);
        void ready.then(() => {
          const s = this.cache.get(name);
          if (s && this.watchers.has(w)) {
            w.queue.push({
              type: 'changed',
              unit: name,
              state: s,
              changed: Object.keys(s) as (keyof UnitState)[],
              at: Date.now(),
            });
          }
        });
      }
    }
    const queue = w.queue;
    return {
      close: () => {
        void queue.return();
      },
      [Symbol.asyncIterator]: () => queue,
    };
  }

  /** Feed a PropertiesChanged signal for a unit object. */
  propertiesChanged(
    name: string,
    props: Record<string, unknown>,
    invalidated: readonly string[],
    seq: number,
  ): void {
    if (!this.interested(name)) return;
    const f = this.fetching.get(name);
    if (f) {
      f.buffer.push({ seq, props });
      return;
    }
    const cur = this.cache.get(name);
    if (!cur) {
      void this.startFetch(name, true);
      return;
    }
    const { state, changed } = applyProperties(cur, props);
    this.cache.set(name, state);
    this.markDirty(name, changed);
    if (invalidated.some((p) => p in PROPERTY_FIELDS)) void this.startFetch(name, true);
  }

  /**
   * Compares what we hold with systemd (one list call) and fetches the units that differ. Concurrent
   * calls share one run.
   */
  resync(reason: string): Promise<void> {
    if (!this.active) return Promise.resolve();
    this.resyncing ??= this.doResync(reason).finally(() => {
      this.resyncing = undefined;
    });
    return this.resyncing;
  }

  /** Ends every stream. */
  close(): void {
    this.closed = true;
    for (const w of [...this.watchers]) w.queue.end();
    this.watchers.clear();
    this.stopTimer();
    this.cache.clear();
  }

  private async doResync(reason: string): Promise<void> {
    if (this.closed) return;
    this.stats.resyncs++;
    const all = [...this.watchers].some((w) => !w.filter);
    const names = new Set<string>();
    for (const w of this.watchers) if (w.filter) for (const n of w.filter) names.add(n);
    if (names.size === 0 && !all) return;
    try {
      // An all-units watch compares the loaded units (one ListUnits); named units are compared even
      // when not loaded (one ListUnitsByNames).
      const summaries = all ? await this.source.listAll() : await this.source.list([...names]);
      for (const s of summaries) {
        if (!this.interested(s.name)) continue;
        const cur = this.cache.get(s.name);
        if (
          !cur ||
          cur.loadState !== s.loadState ||
          cur.activeState !== s.activeState ||
          cur.subState !== s.subState
        ) {
          if (cur || !all) void this.startFetch(s.name, true);
        }
      }
    } catch (err) {
      if (this.closed) return;
      this.log('resync failed', { reason, error: err instanceof Error ? err.message : String(err) });
    }
  }

  private interested(name: string): boolean {
    for (const w of this.watchers) if (!w.filter || w.filter.has(name)) return true;
    return false;
  }

  private startFetch(name: string, emit: boolean): Promise<void> {
    const existing = this.fetching.get(name);
    if (existing) return existing.promise;
    const entry: Fetching = { promise: Promise.resolve(), buffer: [] };
    this.fetching.set(name, entry);
    this.stats.fetches++;
    entry.promise = this.source.fetch(name).then(
      ({ props, seq }) => {
        this.fetching.delete(name);
        if (!this.interested(name)) return;
        const base = this.cache.get(name) ?? emptyState(name);
        let { state, changed } = applyProperties(base, props);
        // The fetched state's own diff is an event only for a unit we already tracked; signals newer
        // than the reply are genuine changes, always.
        const all = new Set(emit ? changed : []);
        for (const b of entry.buffer) {
          if (b.seq <= seq) continue;
          ({ state, changed } = applyProperties(state, b.props));
          for (const c of changed) all.add(c);
        }
        this.cache.set(name, state);
        this.markDirty(name, [...all]);
      },
      (err: unknown) => {
        this.fetching.delete(name);
        if (this.closed) return;
        this.log('fetching unit state failed', {
          unit: name,
          error: err instanceof Error ? err.message : String(err),
        });
      },
    );
    return entry.promise;
  }

  private markDirty(name: string, fields: readonly (keyof UnitState)[]): void {
    if (fields.length === 0) return;
    let d = this.dirty.get(name);
    if (!d) {
      d = { fields: new Set(), at: Date.now() };
      this.dirty.set(name, d);
    }
    for (const f of fields) d.fields.add(f);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = [...this.dirty];
    this.dirty.clear();
    for (const [name, d] of batch) this.emitChanged(name, d);
  }

  private emitChanged(name: string, d: { fields: Set<keyof UnitState>; at: number }): void {
    const state = this.cache.get(name);
    if (!state) return;
    const ev: UnitEvent = { type: 'changed', unit: name, state, changed: [...d.fields], at: d.at };
    for (const w of this.watchers) {
      if (!w.filter || w.filter.has(name)) {
        w.queue.push(ev);
        this.stats.events++;
      }
    }
  }

  private remove(w: Watcher): void {
    this.watchers.delete(w);
    if (this.watchers.size === 0) {
      this.stopTimer();
      this.cache.clear();
    }
  }

  private startTimer(): void {
    if (this.timer || this.resyncIntervalMs <= 0) return;
    this.timer = setInterval(() => void this.resync('periodic'), this.resyncIntervalMs);
    this.timer.unref();
  }

  private stopTimer(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
