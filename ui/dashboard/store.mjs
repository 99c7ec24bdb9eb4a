// Cluster state for the dashboard: one full read, then kept current from /flotilla/v1/events
// (no polling). Unit, schedule and state events are applied in place; a unit the page has not
// seen, machine changes and resyncs are read again. Subscribers are told at most once per frame.
import { useEffect, useState } from 'preact/hooks';
import { LoggedOut, api, follow, list } from './api.mjs';

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
    this.ready = false;
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
    const [machines, units, states] = await Promise.all([
      list('/fleet/v1/machines', 'machines'),
      list('/fleet/v1/units', 'units'),
      list('/fleet/v1/state', 'states'),
    ]);
    this.machines = machines;
    this.units = new Map(units.map((u) => [u.name, u]));
    this.states = new Map(states.map((s) => [s.name, s]));
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
    this.events.push({ ...ev, at: new Date(now).toISOString() });
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    const u = ev.name !== undefined ? this.units.get(ev.name) : undefined;
    switch (ev.kind) {
      case 'unit':
        if (ev.action === 'delete') {
          this.units.delete(ev.name);
          this.states.delete(ev.name);
        } else if (u) this.units.set(ev.name, { ...u, desiredState: ev.desiredState });
        else return 'unit';
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
      case 'available':
        return 'all';
      default:
        break;
    }
    this.changed();
    return undefined;
  }

  /** Follow the events stream until `signal` aborts. */
  async run(signal, onLoggedOut) {
    const sampler = setInterval(() => this.sample(), SAMPLE_MS);
    signal.addEventListener('abort', () => clearInterval(sampler));
    const onLine = (line) => {
      if (!line) return;
      const ev = JSON.parse(line);
      const need = this.apply(ev);
      if (need === 'unit') void this.loadUnit(ev.name);
      else if (need === 'machines') void this.loadMachines();
      else if (need === 'all') void this.loadAll();
      if (need) this.changed();
    };
    try {
      await this.loadAll();
      await follow('/flotilla/v1/events', onLine, signal);
    } catch (e) {
      if (e instanceof LoggedOut) onLoggedOut();
    }
  }
}

/** The store of this page, re-rendering the caller on change. */
export function useStore(store) {
  const [, setV] = useState(0);
  useEffect(() => store.subscribe(setV), [store]);
  return store;
}
