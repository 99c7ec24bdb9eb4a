import dbus from 'dbus-next';
import { afterEach, describe, expect, it } from 'vitest';
import type { UnitEvent, UnitSummary, UnitWatch } from '../../../src/systemd/manager.js';
import { WatchHub, type WatchSource } from '../../../src/systemd/watch.js';

const V = (sig: string, v: unknown) => new dbus.Variant(sig, v);

/** A scripted systemd: unit props by name, every call counted, fetches resolvable by hand. */
class Source implements WatchSource {
  calls: string[] = [];
  props = new Map<string, Record<string, unknown>>();
  seq = 0;
  hold: (() => void) | undefined;
  held = false;

  set(name: string, active: string, sub: string, extra: Record<string, unknown> = {}): void {
    this.props.set(name, {
      LoadState: V('s', 'loaded'),
      ActiveState: V('s', active),
      SubState: V('s', sub),
      ...extra,
    });
  }

  async fetch(name: string): Promise<{ props: Record<string, unknown>; seq: number }> {
    this.calls.push(`fetch ${name}`);
    if (this.held) await new Promise<void>((r) => (this.hold = r));
    return { props: { ...this.props.get(name) }, seq: this.seq };
  }

  list(names: readonly string[]): Promise<UnitSummary[]> {
    this.calls.push('list');
    return Promise.resolve(names.map((n) => this.summary(n)));
  }

  listAll(): Promise<UnitSummary[]> {
    this.calls.push('listAll');
    return Promise.resolve([...this.props.keys()].map((n) => this.summary(n)));
  }

  private summary(n: string): UnitSummary {
    const p = this.props.get(n) ?? {};
    const s = (k: string) => ((p[k] as { value?: string } | undefined)?.value ?? '') as never;
    return {
      name: n,
      description: '',
      loadState: s('LoadState'),
      activeState: s('ActiveState'),
      subState: s('SubState'),
      following: '',
      path: '',
      jobId: 0,
      jobType: '',
    };
  }
}

async function take(w: UnitWatch, n: number): Promise<UnitEvent[]> {
  const out: UnitEvent[] = [];
  const it = w[Symbol.asyncIterator]();
  while (out.length < n) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

const tick = () => new Promise((r) => setImmediate(r));

describe('WatchHub', () => {
  let hub: WatchHub | undefined;
  afterEach(() => hub?.close());

  it('primes watched units, then turns signals into events without any call', async () => {
    const src = new Source();
    src.set('a.service', 'inactive', 'dead');
    hub = new WatchHub(src, { resyncIntervalMs: 0 });
    const w = hub.watch({ units: ['a.service'] });
    const [init] = await take(w, 1);
    expect(init).toMatchObject({ type: 'changed', unit: 'a.service', state: { activeState: 'inactive' } });
    src.calls = [];
    // Unit and Service interface signals of one transition: one event
    hub.propertiesChanged('a.service', { ActiveState: V('s', 'active'), SubState: V('s', 'running') }, [], 1);
    hub.propertiesChanged(
      'a.service',
      { MainPID: V('u', 77), ExecMainStartTimestamp: V('t', 1_700_000_000_000_000n) },
      [],
      2,
    );
    const [ev] = await take(w, 1);
    expect(ev).toMatchObject({
      type: 'changed',
      state: {
        activeState: 'active',
        subState: 'running',
        mainPID: 77,
        execMainStartTimestamp: 1_700_000_000_000,
      },
    });
    expect(ev?.type === 'changed' && ev.changed.sort()).toEqual([
      'activeState',
      'execMainStartTimestamp',
      'mainPID',
      'subState',
    ]);
    expect(src.calls).toEqual([]);
  });

  it('ignores units nobody watches and signals that change nothing', async () => {
    const src = new Source();
    src.set('a.service', 'active', 'running');
    hub = new WatchHub(src, { resyncIntervalMs: 0 });
    const w = hub.watch({ units: ['a.service'] });
    await take(w, 1); // the initial state
    src.calls = [];
    hub.propertiesChanged('other.service', { ActiveState: V('s', 'failed') }, [], 1);
    hub.propertiesChanged('a.service', { ActiveState: V('s', 'active') }, [], 2);
    hub.propertiesChanged('a.service', { SubState: V('s', 'exited') }, [], 3);
    const [ev] = await take(w, 1);
    expect(ev).toMatchObject({ unit: 'a.service', changed: ['subState'] });
    expect(src.calls).toEqual([]);
  });

  it('applies signals newer than a fetch reply on top of it and drops older ones', async () => {
    const src = new Source();
    src.set('a.service', 'activating', 'start');
    src.held = true;
    hub = new WatchHub(src, { resyncIntervalMs: 0 });
    const w = hub.watch({ units: ['a.service'] });
    await tick();
    src.seq = 10; // the reply sits at position 10 of the message stream
    hub.propertiesChanged('a.service', { ActiveState: V('s', 'inactive') }, [], 5); // older than the reply: dropped
    hub.propertiesChanged(
      'a.service',
      { SubState: V('s', 'running'), ActiveState: V('s', 'active') },
      [],
      11,
    ); // newer
    src.hold!();
    await tick();
    const [init] = await take(w, 1);
    expect(init).toMatchObject({ state: { activeState: 'active', subState: 'running' } });
    hub.propertiesChanged('a.service', { MainPID: V('u', 9) }, [], 12);
    // the newer buffered signal's change and this one, coalesced in one turn of the event loop
    const [ev] = await take(w, 1);
    expect(ev?.type === 'changed' && ev.changed.sort()).toEqual(['activeState', 'mainPID', 'subState']);
    expect(ev).toMatchObject({ state: { activeState: 'active', subState: 'running', mainPID: 9 } });
  });

  it('refetches when systemd invalidates a property instead of sending it', async () => {
    const src = new Source();
    src.set('a.service', 'active', 'running', { Result: V('s', 'success') });
    hub = new WatchHub(src, { resyncIntervalMs: 0 });
    const w = hub.watch({ units: ['a.service'] });
    await take(w, 1);
    src.calls = [];
    src.set('a.service', 'active', 'running', { Result: V('s', 'exit-code') });
    hub.propertiesChanged('a.service', {}, ['Result'], 1);
    const [ev] = await take(w, 1);
    expect(ev).toMatchObject({ changed: ['result'], state: { result: 'exit-code' } });
    expect(src.calls).toEqual(['fetch a.service']);
  });

  it('resync finds drift with one list call and fetches only what differs', async () => {
    const src = new Source();
    src.set('a.service', 'active', 'running');
    src.set('b.service', 'active', 'running');
    hub = new WatchHub(src, { resyncIntervalMs: 0 });
    const w = hub.watch({ units: ['a.service', 'b.service'] });
    await take(w, 2);
    src.calls = [];
    src.set('b.service', 'failed', 'failed'); // the signal was lost
    await hub.resync('test');
    const [ev] = await take(w, 1);
    expect(ev).toMatchObject({ unit: 'b.service', state: { activeState: 'failed' } });
    expect(src.calls).toEqual(['list', 'fetch b.service']);
  });

  it('an all-units watch fetches a unit the first time it is seen, once', async () => {
    const src = new Source();
    src.set('x.service', 'active', 'running');
    hub = new WatchHub(src, { resyncIntervalMs: 0 });
    const w = hub.watch();
    hub.propertiesChanged('x.service', { SubState: V('s', 'running') }, [], 1);
    const [ev] = await take(w, 1);
    expect(ev).toMatchObject({ unit: 'x.service', state: { activeState: 'active' } });
    src.calls = [];
    hub.propertiesChanged('x.service', { SubState: V('s', 'exited') }, [], 2);
    expect(await take(w, 1)).toMatchObject([{ unit: 'x.service', changed: ['subState'] }]);
    expect(src.calls).toEqual([]);
  });

  it('runs the safety-net resync on its interval and nothing else while idle', async () => {
    const src = new Source();
    src.set('a.service', 'active', 'running');
    hub = new WatchHub(src, { resyncIntervalMs: 40 });
    hub.watch({ units: ['a.service'] });
    await new Promise((r) => setTimeout(r, 150));
    expect(src.calls[0]).toBe('fetch a.service');
    expect(src.calls.slice(1).every((c) => c === 'list')).toBe(true);
    expect(src.calls.length).toBeGreaterThanOrEqual(3);
  });

  it('stops the resync timer and clears the cache when the last watch closes', async () => {
    const src = new Source();
    src.set('a.service', 'active', 'running');
    hub = new WatchHub(src, { resyncIntervalMs: 20 });
    const w = hub.watch({ units: ['a.service'] });
    await tick();
    w.close();
    src.calls = [];
    await new Promise((r) => setTimeout(r, 80));
    expect(src.calls).toEqual([]);
    expect(hub.active).toBe(false);
  });
});
