// Cluster state for the dashboard: one read (GET /flotilla/v1/snapshot, at registry revision R), then
// kept current from /flotilla/v1/events?since=R (no polling, no gap: the agent replays the lines after
// R). Unit, schedule and state events are applied in place; a line at or below the revision already
// applied is dropped (never doubled). Machine changes are read again; a resync reads the snapshot
// again; a broken stream resumes from the last revision seen. Subscribers are told once per frame.
import { useEffect, useState } from 'preact/hooks';
import { LoggedOut, api, follow, list } from './api.mjs';

const RETRY_MS = 1000;

const MAX_EVENTS = 1000;
const SAMPLE_MS = 5000;
const MAX_SAMPLES = 720; // an hour of 5 s samples

export class Store {
  constructor() {
    this.units = new Map();
    this.states = new Map(); // unit name → its state record (the hosting machine's)
    this.machines = [];
    this.leader = undefined;
    this.events = [];
    this.samples = []; // {at, counts: {state: n}}
    this.failovers = []; // {name, from, to, at, ms}
    this.lost = new Map(); // unit name → {from, at}: its machine left, not placed again yet
    this.version = 0;
    this.revision = 0; // the registry revision the state is at
    this.ready = false;
    this.resyncing = false;
    this.subs = new Set();
    this.pending = false;
  }

  subscribe(fn) {
    this.subs.add(fn);
    return () => this.subs.delete(fn);
  }

  changed() {
    this.version++;
    if (this.pending) return;
    this.pending = true;
    const run = () => {
      this.pending = false;
      for (const fn of this.subs) fn(this.version);
    };
    if (typeof requestAnimationFrame === 'function' && document.visibilityState !== 'hidden')
      requestAnimationFrame(run);
    else setTimeout(run, 16);
  }

  async loadAll() {
    const snap = await api('/flotilla/v1/snapshot');
    this.machines = snap.machines ?? [];
    this.units = new Map((snap.units ?? []).map((u) => [u.name, u]));
    this.states = new Map((snap.states ?? []).map((s) => [s.name, s]));
    this.leader = snap.leader;
    this.revision = snap.revision;
    this.ready = true;
    this.sample();
    this.changed();
  }

  async loadMachines() {
    this.machines = await list('/fleet/v1/machines', 'machines');
    this.changed();
  }

  async loadUnit(name) {
    try {
      const u = await api(`/fleet/v1/units/${encodeURIComponent(name)}`);
      this.units.set(name, u);
    } catch {
      this.units.delete(name); // gone again meanwhile
    }
    this.changed();
  }

  counts() {
    const c = {};
    for (const u of this.units.values()) {
      const k = u.currentState ?? 'unscheduled';
      c[k] = (c[k] ?? 0) + 1;
    }
    return c;
  }

  sample(now = Date.now()) {
    this.samples.push({ at: now, counts: this.counts() });
    if (this.samples.length > MAX_SAMPLES) this.samples.splice(0, this.samples.length - MAX_SAMPLES);
  }

  /** Apply one event line; returns what needs a read (or nothing). */
  apply(ev, now = Date.now()) {
    if (ev.kind === 'ping' || ev.kind === 'hello') return;
    if (ev.kind !== 'resync' && ev.kind !== 'available' && ev.kind !== 'overflow') {
      if (typeof ev.revision === 'number' && ev.revision <= this.revision) return; // in the snapshot
      if (typeof ev.revision === 'number') this.revision = ev.revision;
    }
    this.events.push({ ...ev, at: new Date(now).toISOString() });
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    const u = ev.name !== undefined ? this.units.get(ev.name) : undefined;
    switch (ev.kind) {
      case 'unit':
        if (ev.action === 'delete') {
          this.units.delete(ev.name);
          this.states.delete(ev.name);
        } else if (u) this.units.set(ev.name, { ...u, desiredState: ev.desiredState, hash: ev.hash });
        else this.units.set(ev.name, { name: ev.name, desiredState: ev.desiredState, hash: ev.hash });
        break;
      case 'schedule':
        if (u) {
          const to = ev.action === 'delete' ? undefined : ev.machineID;
          if (to !== undefined) {
            const lost = this.lost.get(ev.name);
            if (lost && lost.from !== to) {
              this.failovers.push({ name: ev.name, from: lost.from, to, at: now, ms: now - lost.at });
              if (this.failovers.length > 200) this.failovers.shift();
            }
            this.lost.delete(ev.name);
          }
          this.units.set(ev.name, { ...u, machineID: to });
        }
        break;
      case 'state':
        if (ev.action === 'delete') {
          const s = this.states.get(ev.name);
          if (s && (!ev.machineID || s.machineID === ev.machineID)) this.states.delete(ev.name);
        } else {
          this.states.set(ev.name, {
            name: ev.name,
            machineID: ev.machineID,
            hash: ev.hash,
            systemdLoadState: ev.systemdLoadState,
            systemdActiveState: ev.systemdActiveState,
            systemdSubState: ev.systemdSubState,
          });
          if (u) this.units.set(ev.name, { ...u, currentState: ev.currentState });
        }
        break;
      case 'machine':
        if (ev.action === 'delete')
          for (const x of this.units.values())
            if (x.machineID === ev.id) this.lost.set(x.name, { from: ev.id, at: now });
        return 'machines';
      case 'metadata':
        return 'machines';
      case 'leader':
        this.leader = ev.machineID;
        break;
      case 'resync':
      case 'overflow':
        return 'all';
      case 'available':
        return ev.available ? 'all' : undefined;
      default:
        break;
    }
    this.changed();
    return undefined;
  }

  /**
   * Follow the events stream until `signal` aborts: snapshot at R, then events?since=R. A resync
   * (or overflow) ends this stream and starts again from a new snapshot, so no line of the old
   * stream is applied on top of it; a stream that ends or breaks resumes from the last revision.
   */
  async run(signal, onLoggedOut) {
    const sampler = setInterval(() => this.sample(), SAMPLE_MS);
    signal.addEventListener('abort', () => clearInterval(sampler));
    while (!signal.aborted) {
      const inner = new AbortController();
      const stop = () => inner.abort();
      signal.addEventListener('abort', stop);
      const onLine = (line) => {
        if (!line || inner.signal.aborted) return;
        const need = this.apply(JSON.parse(line));
        if (need === 'machines') void this.loadMachines();
        else if (need === 'all') {
          this.resyncing = true;
          inner.abort();
        }
        if (need) this.changed();
      };
      try {
        if (!this.ready || this.resyncing) {
          await this.loadAll();
          this.resyncing = false;
        }
        await follow(`/flotilla/v1/events?since=${this.revision}`, onLine, inner.signal);
      } catch (e) {
        if (e instanceof LoggedOut) return onLoggedOut();
      } finally {
        signal.removeEventListener('abort', stop);
      }
      if (!signal.aborted) await new Promise((r) => setTimeout(r, this.resyncing ? 50 : RETRY_MS));
    }
  }
}

/** The store of this page, re-rendering the caller on change. */
export function useStore(store) {
  const [, setV] = useState(0);
  useEffect(() => store.subscribe(setV), [store]);
  return store;
}
