/**
 * In-memory `SystemdManager` for pure-logic and scale tests. Same contract as the D-Bus driver for
 * what it models: name validation, ownership, install/uninstall (with `[Install]` detection), jobs
 * with typed failures, state, listing and pushed events.
 *
 * What it does NOT model (and fails loudly on, never silently): running processes, dependencies,
 * unit-file semantics beyond [Install]. Job outcomes are immediate and scripted: `fail(name, kind,
 * result, unitResult)` makes the next job of that kind fail. Transient units are "running" until
 * stopped. `calls` counts every method call, like the driver's bus counter.
 */
import { FlotillaError } from '../lib/errors.js';
import { AsyncQueue } from '../lib/queue.js';
import {
  SystemdJobError,
  type InstallResult,
  type JobKind,
  type JobOptions,
  type JobOutcome,
  type JobResultName,
  type ResourceLimits,
  type SystemdManager,
  type TransientUnitSpec,
  type UnitEvent,
  type UnitFileSpec,
  type UnitState,
  type UnitSummary,
  type UnitWatch,
  type WatchOptions,
} from './manager.js';
import { applyProperties, emptyState } from './properties.js';
import { resourceProperties, transientProperties } from './transient.js';
import { hasInstallSection, templateOf, unitDescription, validateUnitName } from './unit-deps.js';
import { DEFAULT_UNITS_DIR } from './unit-files.js';

interface Scripted {
  result: JobResultName;
  unitResult: string;
  journal: string[];
}

export interface FakeSystemdOptions {
  unitsDir?: string;
  transientPrefix?: string;
  /** Units that exist but are not ours (e.g. `sshd.service`), loaded and active. */
  foreign?: readonly string[];
}

export class FakeSystemdManager implements SystemdManager {
  readonly calls = new Map<string, number>();
  /** Unit files we installed: name → contents. */
  readonly files = new Map<string, string>();
  /** Resource limits applied with `startTransient`/`setResources`, by unit. */
  readonly resources = new Map<string, ResourceLimits>();
  private readonly enabled = new Set<string>();
  private readonly units = new Map<string, UnitState>();
  private readonly transient = new Set<string>();
  private readonly scripted = new Map<string, Scripted>();
  private readonly watchers = new Set<{ filter: ReadonlySet<string> | null; queue: AsyncQueue<UnitEvent> }>();
  private readonly unitsDir: string;
  private readonly transientPrefix: string;
  private jobId = 0;
  private pid = 1000;
  private closed = false;

  constructor(opts: FakeSystemdOptions = {}) {
    this.unitsDir = opts.unitsDir ?? DEFAULT_UNITS_DIR;
    this.transientPrefix = opts.transientPrefix ?? 'flotilla-';
    for (const f of opts.foreign ?? []) {
      validateUnitName(f);
      this.units.set(f, {
        ...emptyState(f),
        loadState: 'loaded',
        activeState: 'active',
        subState: 'running',
        fragmentPath: `/lib/systemd/system/${f}`,
        mainPID: this.pid++,
        result: 'success',
      });
    }
  }

  /** The next `kind` job of `name` ends with `result` (and the unit with `unitResult`). */
  fail(
    name: string,
    kind: JobKind,
    result: JobResultName,
    unitResult = 'exit-code',
    journal: string[] = [],
  ): void {
    this.scripted.set(`${kind} ${name}`, { result, unitResult, journal });
  }

  /** Whether `name` is enabled (it had an [Install] section). */
  isEnabled(name: string): boolean {
    return this.enabled.has(name);
  }

  async install(name: string, contents: string): Promise<InstallResult> {
    const [r] = await this.installMany([{ name, contents }]);
    return r!;
  }

  installMany(units: readonly UnitFileSpec[]): Promise<InstallResult[]> {
    return this.op('installMany', () => {
      for (const u of units) validateUnitName(u.name);
      if (new Set(units.map((u) => u.name)).size !== units.length)
        throw new FlotillaError('E_USAGE', 'installMany: duplicate unit names');
      const withInstall = new Set(units.filter((u) => hasInstallSection(u.contents)).map((u) => u.name));
      for (const u of units) {
        const existing = this.units.get(u.name);
        if (!this.files.has(u.name) && existing?.fragmentPath && existing.loadState === 'loaded')
          throw new FlotillaError(
            'E_SYSTEMD_NOT_OWNED',
            `${u.name} already exists at ${existing.fragmentPath}`,
            { unit: u.name },
          );
      }
      return units.map((u) => {
        const changed = this.files.get(u.name) !== u.contents;
        this.files.set(u.name, u.contents);
        if (withInstall.has(u.name)) this.enabled.add(u.name);
        this.update(u.name, {
          loadState: 'loaded',
          description: unitDescription(u.name, u.contents) ?? u.name,
          fragmentPath: `/run/systemd/system/${u.name}`,
          unitFileState: withInstall.has(u.name) ? 'enabled-runtime' : 'linked-runtime',
        });
        return {
          name: u.name,
          path: `${this.unitsDir}/${u.name}`,
          changed,
          enabled: withInstall.has(u.name),
        };
      });
    });
  }

  uninstall(name: string): Promise<void> {
    return this.uninstallMany([name]);
  }

  uninstallMany(names: readonly string[]): Promise<void> {
    return this.op('uninstallMany', () => {
      for (const n of names) validateUnitName(n);
      for (const name of names) {
        if (!this.files.has(name)) continue;
        if (this.units.has(name)) this.transition(name, 'stop');
        this.files.delete(name);
        this.enabled.delete(name);
        this.update(name, { loadState: 'not-found', fragmentPath: null, unitFileState: null });
        this.units.delete(name);
      }
    });
  }

  start(name: string, _opts?: JobOptions): Promise<JobOutcome> {
    return this.job('start', name);
  }

  stop(name: string, _opts?: JobOptions): Promise<JobOutcome> {
    return this.job('stop', name);
  }

  restart(name: string, _opts?: JobOptions): Promise<JobOutcome> {
    return this.job('restart', name);
  }

  startTransient(spec: TransientUnitSpec, _opts?: JobOptions): Promise<JobOutcome> {
    return this.op('startTransient', () => {
      validateUnitName(spec.name);
      if (!spec.name.endsWith('.service') || !spec.name.startsWith(this.transientPrefix))
        throw new FlotillaError(
          'E_SYSTEMD_NOT_OWNED',
          `transient units must be services named ${this.transientPrefix}…`,
          {
            unit: spec.name,
          },
        );
      transientProperties(spec); // same validation as the driver
      if (this.units.get(spec.name)?.loadState === 'loaded')
        throw new FlotillaError(
          'E_SYSTEMD_CALL',
          `StartTransientUnit: Unit ${spec.name} was already loaded or has a fragment file.`,
          {
            name: 'org.freedesktop.systemd1.UnitExists',
          },
        );
      this.transient.add(spec.name);
      this.resources.set(spec.name, { ...spec });
      this.update(spec.name, { loadState: 'loaded', transient: true, description: spec.description ?? null });
      return this.transition(spec.name, 'start');
    });
  }

  setResources(name: string, limits: ResourceLimits): Promise<void> {
    return this.op('setResources', () => {
      this.assertOwned(name);
      resourceProperties(limits);
      this.resources.set(name, { ...this.resources.get(name), ...limits });
    });
  }

  state(name: string): Promise<UnitState> {
    return this.op('state', () => {
      validateUnitName(name);
      return this.snapshot(name);
    });
  }

  states(names: readonly string[]): Promise<UnitState[]> {
    return this.op('states', () => {
      for (const n of names) validateUnitName(n);
      return names.map((n) => this.snapshot(n));
    });
  }

  list(names?: readonly string[]): Promise<UnitSummary[]> {
    return this.op('list', () => {
      for (const n of names ?? []) validateUnitName(n);
      const list = names ?? [...this.units.keys()].sort();
      return list.map((n) => {
        const s = this.snapshot(n);
        return {
          name: n,
          description: s.description ?? n,
          loadState: s.loadState,
          activeState: s.activeState,
          subState: s.subState,
          following: '',
          path: `/fake/unit/${encodeURIComponent(n)}`,
          jobId: 0,
          jobType: '',
        };
      });
    });
  }

  watch(opts: WatchOptions = {}): UnitWatch {
    this.assertOpen();
    this.count('watch');
    for (const n of opts.units ?? []) validateUnitName(n);
    const w = {
      filter: opts.units ? new Set(opts.units) : null,
      queue: new AsyncQueue<UnitEvent>(() => this.watchers.delete(w)),
    };
    this.watchers.add(w);
    if (opts.units) {
      for (const n of opts.units) {
        const state = this.snapshot(n);
        w.queue.push({
          type: 'changed',
          unit: n,
          state,
          changed: Object.keys(state) as (keyof UnitState)[],
          at: Date.now(),
        });
      }
    }
    return { close: () => void w.queue.return(), [Symbol.asyncIterator]: () => w.queue };
  }

  isOwned(name: string): Promise<boolean> {
    return this.op('isOwned', () => {
      validateUnitName(name);
      return this.owned(name);
    });
  }

  /** Which unit a pid belongs to, for `unitOfPid` (tests set it). */
  readonly pids = new Map<number, string>();

  unitOfPid(pid: number): Promise<string | undefined> {
    return this.op('unitOfPid', () => this.pids.get(pid));
  }

  reload(): Promise<void> {
    return this.op('reload', () => undefined);
  }

  /** Records the request (`reboots`); the fake machine does not go anywhere. */
  reboot(): Promise<void> {
    return this.op('reboot', () => {
      this.reboots++;
    });
  }

  /** How many times `reboot()` was called. */
  reboots = 0;

  close(): Promise<void> {
    this.closed = true;
    for (const w of this.watchers) w.queue.end();
    this.watchers.clear();
    return Promise.resolve();
  }

  // ---- internals -----------------------------------------------------------------------------

  private job(kind: JobKind, name: string): Promise<JobOutcome> {
    return this.op(kind, () => {
      this.assertOwned(name);
      if (!this.units.has(name) && !(templateOf(name) && this.files.has(templateOf(name)!)))
        throw new FlotillaError('E_SYSTEMD_CALL', `${kind}: Unit ${name} not found.`, {
          name: 'org.freedesktop.systemd1.NoSuchUnit',
        });
      return this.transition(name, kind);
    });
  }

  private transition(name: string, kind: JobKind): JobOutcome {
    const job = `/org/freedesktop/systemd1/job/${++this.jobId}`;
    const script = this.scripted.get(`${kind} ${name}`);
    this.scripted.delete(`${kind} ${name}`);
    const now = Date.now();
    if (!this.units.has(name)) {
      const t = templateOf(name);
      const body = this.files.get(name) ?? (t !== undefined ? this.files.get(t) : undefined);
      this.update(name, {
        loadState: 'loaded',
        fragmentPath: `/run/systemd/system/${t ?? name}`,
        description: (body !== undefined ? unitDescription(name, body) : undefined) ?? name,
      });
    }
    if (script && script.result !== 'done') {
      if (kind !== 'stop') {
        this.update(name, {
          activeState: 'failed',
          subState: 'failed',
          result: script.unitResult,
          mainPID: 0,
          execMainCode: 1,
          execMainStatus: script.unitResult === 'exec' ? 203 : 1,
          stateChangeTimestamp: now,
          inactiveEnterTimestamp: now,
        });
      }
      throw new SystemdJobError({
        unit: name,
        kind,
        job,
        result: script.result,
        state: this.snapshot(name),
        journal: script.journal,
      });
    }
    if (kind === 'stop') {
      if (this.snapshot(name).activeState !== 'inactive') {
        this.update(name, {
          activeState: 'inactive',
          subState: 'dead',
          mainPID: 0,
          stateChangeTimestamp: now,
          activeExitTimestamp: now,
          inactiveEnterTimestamp: now,
        });
      }
      if (this.transient.has(name)) {
        this.transient.delete(name); // collected (CollectMode=inactive-or-failed)
        this.units.delete(name);
      }
    } else {
      this.update(name, {
        activeState: 'active',
        subState: 'running',
        result: 'success',
        mainPID: this.pid++,
        execMainCode: 0,
        execMainStatus: 0,
        stateChangeTimestamp: now,
        activeEnterTimestamp: now,
        inactiveExitTimestamp: now,
        execMainStartTimestamp: now,
      });
    }
    return { unit: name, kind, job, result: 'done', inferred: false };
  }

  private update(name: string, patch: Partial<UnitState>): void {
    const cur = this.units.get(name) ?? { ...emptyState(name), subState: 'dead', result: 'success' };
    const next = { ...cur, ...patch };
    const changed = (Object.keys(patch) as (keyof UnitState)[]).filter((k) => cur[k] !== next[k]);
    this.units.set(name, next);
    if (changed.length > 0)
      this.emit({ type: 'changed', unit: name, state: { ...next }, changed, at: Date.now() });
  }

  private snapshot(name: string): UnitState {
    const s = this.units.get(name);
    if (s) return { ...s };
    return applyProperties(emptyState(name), {
      LoadState: 'not-found',
      SubState: 'dead',
      Description: name,
      Result: 'success',
    }).state;
  }

  private emit(ev: UnitEvent): void {
    for (const w of this.watchers) if (!w.filter || w.filter.has(ev.unit)) w.queue.push(ev);
  }

  private owned(name: string): boolean {
    if (this.files.has(name)) return true;
    const t = templateOf(name);
    if (t !== undefined && this.files.has(t)) return true;
    return this.transient.has(name);
  }

  private assertOwned(name: string): void {
    validateUnitName(name);
    if (!this.owned(name))
      throw new FlotillaError(
        'E_SYSTEMD_NOT_OWNED',
        `${name} was not installed by flotilla; refusing to change it`,
        { unit: name },
      );
  }

  private assertOpen(): void {
    if (this.closed) throw new FlotillaError('E_CLOSED', 'the systemd manager was closed');
  }

  private count(method: string): void {
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
  }

  /** Runs a method body as the driver would: async, counted, E_CLOSED after close(). */
  private op<T>(method: string, fn: () => T): Promise<T> {
    try {
      this.assertOpen();
      this.count(method);
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
