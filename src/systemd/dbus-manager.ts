/**
 * `SystemdManager` over D-Bus (dbus-next), the way cockpit's service.js talks to systemd:
 *
 * - ONE connection (bus.ts) with three match rules: Manager signals, PropertiesChanged under
 *   /org/freedesktop/systemd1/unit (one rule for every unit, routed here by object path), and
 *   NameOwnerChanged for org.freedesktop.systemd1 (daemon-reexec). `Subscribe()` is called once per
 *   connection (AlreadySubscribed tolerated). No ProxyObject is ever created.
 * - Unit object paths come from systemd (`LoadUnit`, `ListUnitsByNames`), never computed; they are
 *   cached by name (a unit's path never changes, and systemd loads a unit when its path is accessed).
 * - Jobs: `StartUnit`/`StopUnit`/`RestartUnit(name, "replace")` return a job path; we wait for its
 *   `JobRemoved` (jobs.ts). After a reconnect or a systemd re-exec, jobs whose object is gone are
 *   settled from the unit's state (marked `inferred`).
 * - Properties are read with one `org.freedesktop.DBus.Properties.GetAll("")` per unit (all interfaces) and
 *   converted at once (properties.ts): no bigint or Variant leaves this module.
 *
 * See manager.ts for the contract of each method.
 */
import { FlotillaError } from '../lib/errors.js';
import {
  DbusConnection,
  dbusErrorName,
  describe,
  type BusCall,
  type BusSignal,
  type DbusConnectionOptions,
  type SetupContext,
} from './bus.js';
import {
  MANAGER,
  PROPS,
  SD,
  SD_PATH,
  UNIT,
  UNIT_PATH_PREFIX,
  dbusCall,
  managerCall,
  propsCall,
  toVariantProp,
} from './calls.js';
import { JobTracker, inferResult } from './jobs.js';
import { tailUnit } from './journal.js';
import {
  SystemdJobError,
  type InstallResult,
  type JobKind,
  type JobOptions,
  type JobOutcome,
  type ResourceLimits,
  type SystemdManager,
  type TransientUnitSpec,
  type UnitFileSpec,
  type UnitState,
  type UnitSummary,
  type UnitWatch,
  type WatchOptions,
} from './manager.js';
import { nullLogger, type Logger } from '../lib/log.js';
import { applyProperties, emptyState, str, unitNameFromPath } from './properties.js';
import { UnitReader } from './reader.js';
import { resourceProperties, transientProperties } from './transient.js';
import { hasInstallSection, isTemplateName, validateUnitName } from './unit-deps.js';
import { DEFAULT_UNITS_DIR, UnitFileStore } from './unit-files.js';
import { WatchHub } from './watch.js';

/** systemd's unit job methods (`systemctl start|stop|restart|reload|try-restart|reload-or-…`). */
export const HOST_JOB_MEMBERS = [
  'StartUnit',
  'StopUnit',
  'RestartUnit',
  'ReloadUnit',
  'TryRestartUnit',
  'ReloadOrRestartUnit',
  'ReloadOrTryRestartUnit',
] as const;
export type HostJobMember = (typeof HOST_JOB_MEMBERS)[number];

export interface DbusSystemdManagerOptions {
  /** Bus address; default `$DBUS_SYSTEM_BUS_ADDRESS`, else the standard system bus socket. */
  address?: string;
  env?: NodeJS.ProcessEnv;
  /** Our runtime units directory, as systemd sees it. */
  unitsDir?: string;
  /** Prefix to reach `unitsDir` from this process (see unit-files.ts). */
  fsRoot?: string;
  /** Transient units must be named `<prefix>…` (ownership marker). Default `flotilla-`. */
  transientPrefix?: string;
  /** Safety-net resync of watched units; 0 disables. Default 60 s. */
  resyncIntervalMs?: number;
  /** Client-side deadline for JobRemoved. Default 90 s. */
  jobTimeoutMs?: number;
  callTimeoutMs?: number;
  /** How long `connect()` waits for the first connection. Default 10 s. */
  connectTimeoutMs?: number;
  /** Journal lines attached to a failed job. Default 20. */
  journalLines?: number;
  /** Where failed-job journal lines come from; default local `journalctl`. */
  journal?: (unit: string, lines: number) => Promise<string[]>;
  logger?: Logger;
  /** Inject a connection (tests); `address`/`env`/`callTimeoutMs` are then ignored. */
  connection?: DbusConnection;
  bus?: Pick<DbusConnectionOptions, 'reconnectMinMs' | 'reconnectMaxMs' | 'factory'>;
}

export class DbusSystemdManager implements SystemdManager {
  readonly conn: DbusConnection;
  readonly files: UnitFileStore;
  private readonly jobs = new JobTracker();
  /** What each job we wait for is (to judge a lost JobRemoved from the unit's state). */
  private readonly jobKinds = new Map<string, JobKind>();
  private readonly hub: WatchHub;
  private readonly reader: UnitReader;
  private readonly transientPrefix: string;
  private readonly jobTimeoutMs: number;
  private readonly journalLines: number;
  private readonly journal: (unit: string, lines: number) => Promise<string[]>;
  private readonly log: Logger;
  private systemdOwner: string | undefined;
  private closed = false;
  private reloadsSeen = 0;

  /** Connects and waits (up to `connectTimeoutMs`) for the bus; throws E_SYSTEMD_UNAVAILABLE. */
  static async connect(opts: DbusSystemdManagerOptions = {}): Promise<DbusSystemdManager> {
    const m = new DbusSystemdManager(opts);
    try {
      await m.conn.ready(opts.connectTimeoutMs ?? 10_000);
    } catch (err) {
      await m.close();
      throw err;
    }
    return m;
  }

  constructor(opts: DbusSystemdManagerOptions = {}) {
    this.log = opts.logger ?? nullLogger;
    this.conn =
      opts.connection ??
      new DbusConnection({
        ...(opts.address !== undefined ? { address: opts.address } : {}),
        ...(opts.env !== undefined ? { env: opts.env } : {}),
        ...(opts.callTimeoutMs !== undefined ? { callTimeoutMs: opts.callTimeoutMs } : {}),
        ...opts.bus,
        log: (level, msg, fields) => this.log[level](fields ?? {}, msg),
      });
    this.reader = new UnitReader(this.conn);
    this.files = new UnitFileStore(opts.unitsDir ?? DEFAULT_UNITS_DIR, opts.fsRoot ?? '');
    this.transientPrefix = opts.transientPrefix ?? 'flotilla-';
    this.jobTimeoutMs = opts.jobTimeoutMs ?? 90_000;
    this.journalLines = opts.journalLines ?? 20;
    this.journal = opts.journal ?? ((unit, lines) => tailUnit(unit, lines));
    this.hub = new WatchHub(
      {
        fetch: (name) => this.reader.fetchProps(name),
        list: (names) => this.reader.listByNames(names),
        listAll: () => this.reader.listAll(),
      },
      {
        resyncIntervalMs: opts.resyncIntervalMs ?? 60_000,
        log: (msg, fields) => this.log.warn(fields, msg),
      },
    );
    this.conn
      .addMatch(`type='signal',sender='${SD}',interface='${MANAGER}',path='${SD_PATH}'`)
      .catch(() => undefined);
    this.conn
      .addMatch(
        `type='signal',sender='${SD}',interface='${PROPS}',member='PropertiesChanged',path_namespace='${SD_PATH}/unit'`,
      )
      .catch(() => undefined);
    this.conn
      .addMatch(
        `type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='${SD}'`,
      )
      .catch(() => undefined);
    this.conn.onSetup((ctx) => this.setup(ctx));
    this.conn.onSignal((s) => this.onSignal(s));
    this.conn.start();
  }

  // ---- lifecycle of the connection -------------------------------------------------------------

  private async setup(ctx: SetupContext): Promise<void> {
    try {
      const [owner] = await ctx.call(dbusCall('GetNameOwner', 's', [SD]));
      this.systemdOwner = str(owner) ?? undefined;
    } catch (err) {
      // systemd not on the bus (yet): accept its signals once NameOwnerChanged says who it is.
      this.systemdOwner = undefined;
      this.log.warn({ error: describe(err) }, 'systemd has no name on the bus yet');
      return;
    }
    await this.subscribe((c) => ctx.call(c));
    if (ctx.reconnect) setImmediate(() => void this.recover('reconnect'));
  }

  private async subscribe(call: (c: BusCall) => Promise<unknown[]>): Promise<void> {
    try {
      await call(managerCall('Subscribe', '', []));
    } catch (err) {
      const name = dbusErrorName(err);
      if (
        name !== 'org.freedesktop.systemd1.AlreadySubscribed' &&
        name !== 'org.freedesktop.DBus.Error.FileExists'
      )
        throw err;
    }
  }

  /** After missing signals: settle jobs whose object is gone, then resync watches. */
  private async recover(reason: string): Promise<void> {
    if (this.closed) return;
    this.log.info({ reason }, 'recovering systemd state after missed signals');
    await Promise.all(this.jobs.pending().map(([job, unit]) => this.checkJob(job, unit)));
    await this.hub.resync(reason);
  }

  private async checkJob(job: string, unit: string): Promise<void> {
    try {
      await this.conn.call(propsCall('Get', job, 'ss', ['org.freedesktop.systemd1.Job', 'State']));
      return; // still queued or running; JobRemoved will come
    } catch (err) {
      const name = dbusErrorName(err);
      if (
        name !== 'org.freedesktop.DBus.Error.UnknownObject' &&
        name !== 'org.freedesktop.DBus.Error.UnknownMethod'
      ) {
        this.log.warn({ job, error: describe(err) }, 'cannot check job');
        return;
      }
    }
    const kind = this.jobKinds.get(job) ?? 'start';
    let s: UnitState;
    try {
      s = await this.state(unit);
    } catch {
      return;
    }
    this.jobs.settle(job, inferResult(kind, s));
  }

  private onSignal(s: BusSignal): void {
    if (s.interface === 'org.freedesktop.DBus' && s.member === 'NameOwnerChanged') {
      const [name, , newOwner] = s.body as [string, string, string];
      if (name !== SD) return;
      this.systemdOwner = newOwner || undefined;
      if (newOwner) {
        this.log.info({ owner: newOwner }, 'systemd (re)appeared on the bus');
        this.conn
          .call(managerCall('Subscribe', '', []))
          .catch((err: unknown) => {
            const n = dbusErrorName(err);
            if (n !== 'org.freedesktop.systemd1.AlreadySubscribed')
              this.log.warn({ error: describe(err) }, 'Subscribe failed');
          })
          .finally(() => void this.recover('systemd re-exec'));
      }
      return;
    }
    if (this.systemdOwner !== undefined && s.sender !== this.systemdOwner) return;
    if (s.interface === MANAGER && s.path === SD_PATH) {
      switch (s.member) {
        case 'JobRemoved': {
          const [, job, , result] = s.body as [number, string, string, string];
          this.jobKinds.delete(job);
          this.jobs.removed(job, result);
          break;
        }
        case 'Reloading':
          if (s.body[0] === false) {
            this.reloadsSeen++;
            void this.hub.resync('daemon-reload');
          }
          break;
        default:
          break;
      }
      return;
    }
    if (s.interface === PROPS && s.member === 'PropertiesChanged' && s.path.startsWith(UNIT_PATH_PREFIX)) {
      const name = unitNameFromPath(s.path);
      if (!name) return;
      const [, changed, invalidated] = s.body as [string, Record<string, unknown>, string[]];
      this.hub.propertiesChanged(name, changed ?? {}, invalidated ?? [], s.seq);
    }
  }

  // ---- unit files ------------------------------------------------------------------------------

  async install(name: string, contents: string): Promise<InstallResult> {
    const [r] = await this.installMany([{ name, contents }]);
    return r!;
  }

  async installMany(units: readonly UnitFileSpec[]): Promise<InstallResult[]> {
    this.assertOpen();
    for (const u of units) validateUnitName(u.name);
    const names = new Set(units.map((u) => u.name));
    if (names.size !== units.length) throw new FlotillaError('E_USAGE', 'installMany: duplicate unit names');
    // Parses every body (E_UNIT_PARSE) before anything is written.
    const withInstall = units.filter((u) => hasInstallSection(u.contents)).map((u) => u.name);
    // Refuse before writing anything when a unit of that name comes from somewhere else.
    await Promise.all(units.map((u) => this.assertInstallable(u.name)));
    const results: InstallResult[] = [];
    for (const u of units) {
      const w = await this.files.write(u.name, u.contents);
      results.push({ name: u.name, path: w.path, changed: w.changed, enabled: false });
    }
    if (results.length === 0) return results;
    await this.conn.call(managerCall('LinkUnitFiles', 'asbb', [results.map((r) => r.path), true, true]));
    if (withInstall.length > 0) {
      await this.conn.call(managerCall('EnableUnitFiles', 'asbb', [withInstall, true, true]));
      for (const r of results) if (withInstall.includes(r.name)) r.enabled = true;
    }
    await this.reload();
    this.log.info({ units: results.map((r) => r.name) }, 'installed units');
    return results;
  }

  async uninstall(name: string): Promise<void> {
    await this.uninstallMany([name]);
  }

  async uninstallMany(names: readonly string[]): Promise<void> {
    this.assertOpen();
    for (const n of names) validateUnitName(n);
    const ours: string[] = [];
    for (const n of new Set(names)) if (await this.files.has(n)) ours.push(n);
    if (ours.length === 0) return;
    await Promise.all(
      ours.map(async (n) => {
        // A template has no state to stop (its instances are stopped by name).
        if (isTemplateName(n)) return;
        try {
          await this.runJob('stop', n, 'StopUnit', { timeoutMs: this.jobTimeoutMs });
        } catch (err) {
          if (dbusErrorName(err) !== 'org.freedesktop.systemd1.NoSuchUnit')
            this.log.warn({ unit: n, error: describe(err) }, 'stop before uninstall failed; removing anyway');
        }
      }),
    );
    await this.conn.call(managerCall('DisableUnitFiles', 'asb', [ours, true]));
    await Promise.all(
      ours
        .filter((n) => !isTemplateName(n))
        .map((n) =>
          this.conn.call(managerCall('ResetFailedUnit', 's', [n])).catch((err: unknown) => {
            if (dbusErrorName(err) !== 'org.freedesktop.systemd1.NoSuchUnit') throw err;
            return [];
          }),
        ),
    );
    for (const n of ours) await this.files.remove(n);
    await this.reload();
    this.log.info({ units: ours }, 'uninstalled units');
  }

  private async assertInstallable(name: string): Promise<void> {
    if (await this.files.has(name)) return;
    if (isTemplateName(name)) {
      // Templates cannot be loaded; ask for their unit file instead. NoSuchUnit = no file anywhere.
      try {
        const [st] = await this.conn.call(managerCall('GetUnitFileState', 's', [name]));
        throw new FlotillaError(
          'E_SYSTEMD_NOT_OWNED',
          `${name} already exists (${String(st)}); flotilla will not replace it`,
          {
            unit: name,
          },
        );
      } catch (err) {
        if (
          dbusErrorName(err) === 'org.freedesktop.DBus.Error.FileNotFound' ||
          dbusErrorName(err) === 'org.freedesktop.systemd1.NoSuchUnit'
        )
          return;
        throw err;
      }
    }
    const s = await this.state(name);
    if (s.loadState === 'not-found' || s.fragmentPath === null || this.files.contains(s.fragmentPath)) return;
    if (s.loadState === 'loaded' || s.loadState === 'masked') {
      throw new FlotillaError(
        'E_SYSTEMD_NOT_OWNED',
        `${name} already exists at ${s.fragmentPath}; flotilla will not replace it`,
        {
          unit: name,
          fragmentPath: s.fragmentPath,
        },
      );
    }
  }

  // ---- jobs --------------------------------------------------------------------------------------

  async start(name: string, opts: JobOptions = {}): Promise<JobOutcome> {
    await this.assertOwned(name);
    return this.runJob('start', name, 'StartUnit', opts);
  }

  async stop(name: string, opts: JobOptions = {}): Promise<JobOutcome> {
    await this.assertOwned(name);
    return this.runJob('stop', name, 'StopUnit', opts);
  }

  async restart(name: string, opts: JobOptions = {}): Promise<JobOutcome> {
    await this.assertOwned(name);
    return this.runJob('restart', name, 'RestartUnit', opts);
  }

  /**
   * A job on any unit, for first boot only (src/target: cloud-config `command`, where the operator's
   * config names the unit): NOT ownership-checked, so the agent never calls it. `member` is one of
   * systemd's job methods (StartUnit, StopUnit, RestartUnit, ReloadUnit, TryRestartUnit,
   * ReloadOrRestartUnit, ReloadOrTryRestartUnit), mode "replace"; resolves on JobRemoved `done`.
   */
  async hostUnitJob(name: string, member: HostJobMember, opts: JobOptions = {}): Promise<JobOutcome> {
    this.assertOpen();
    validateUnitName(name);
    if (!HOST_JOB_MEMBERS.includes(member)) {
      throw new FlotillaError('E_USAGE', `not a systemd job method: ${String(member)}`);
    }
    const kind: JobKind = member === 'StopUnit' ? 'stop' : member === 'StartUnit' ? 'start' : 'restart';
    return this.runJob(kind, name, member, opts);
  }

  /**
   * Queue a job on a host unit and return its job path without waiting for it (`systemctl
   * --no-block`), as coreos-cloudinit issued its unit commands: first boot runs ordered Before= the
   * units it starts, so waiting for their jobs would wait for itself.
   */
  async enqueueHostUnitJob(name: string, member: HostJobMember): Promise<string> {
    this.assertOpen();
    validateUnitName(name);
    if (!HOST_JOB_MEMBERS.includes(member)) {
      throw new FlotillaError('E_USAGE', `not a systemd job method: ${String(member)}`);
    }
    const [jobPath] = await this.conn.call(managerCall(member, 'ss', [name, 'replace']));
    return String(jobPath);
  }

  /** The units `name` is ordered after (its After= list, as systemd resolved it). */
  async orderedAfter(name: string): Promise<string[]> {
    this.assertOpen();
    validateUnitName(name);
    const path = await this.reader.pathFor(name);
    const [v] = await this.conn.call(propsCall('Get', path, 'ss', [UNIT, 'After']));
    const list = (v as { value?: unknown } | undefined)?.value;
    return Array.isArray(list) ? list.map(String) : [];
  }

  async startTransient(spec: TransientUnitSpec, opts: JobOptions = {}): Promise<JobOutcome> {
    this.assertOpen();
    validateUnitName(spec.name);
    if (!spec.name.endsWith('.service') || !spec.name.startsWith(this.transientPrefix)) {
      throw new FlotillaError(
        'E_SYSTEMD_NOT_OWNED',
        `transient units must be services named ${this.transientPrefix}…: ${spec.name}`,
        { unit: spec.name },
      );
    }
    const props = transientProperties(spec).map(toVariantProp);
    return this.awaitJob(
      'start',
      spec.name,
      'StartTransientUnit',
      'ssa(sv)a(sa(sv))',
      [spec.name, 'replace', props, []],
      opts,
    );
  }

  async setResources(name: string, limits: ResourceLimits): Promise<void> {
    await this.assertOwned(name);
    const props = resourceProperties(limits).map(toVariantProp);
    if (props.length === 0) return;
    await this.conn.call(managerCall('SetUnitProperties', 'sba(sv)', [name, true, props]));
  }

  private runJob(kind: JobKind, name: string, member: string, opts: JobOptions): Promise<JobOutcome> {
    return this.awaitJob(kind, name, member, 'ss', [name, 'replace'], opts);
  }

  private async awaitJob(
    kind: JobKind,
    name: string,
    member: string,
    signature: string,
    body: unknown[],
    opts: JobOptions,
  ): Promise<JobOutcome> {
    const [jobPath] = await this.conn.call(managerCall(member, signature, body));
    const job = String(jobPath);
    this.jobKinds.set(job, kind);
    const end = await this.jobs.wait(job, name, opts.timeoutMs ?? this.jobTimeoutMs);
    this.jobKinds.delete(job);
    if (end.result === 'done') return { unit: name, kind, job, result: 'done', inferred: end.inferred };
    const state = await this.state(name).catch(() => undefined);
    const journal = await this.journal(name, this.journalLines).catch((err: unknown) => [
      `(journal unavailable: ${describe(err)})`,
    ]);
    throw new SystemdJobError({
      unit: name,
      kind,
      job,
      result: end.result,
      state,
      journal,
      clientTimeout: end.clientTimeout,
    });
  }

  // ---- ownership ---------------------------------------------------------------------------------

  async isOwned(name: string): Promise<boolean> {
    validateUnitName(name);
    if (await this.files.owns(name)) return true;
    if (!name.startsWith(this.transientPrefix)) return false;
    const path = await this.reader.pathFor(name);
    const [v] = await this.conn.call(propsCall('Get', path, 'ss', [UNIT, 'Transient']));
    return (v as { value?: unknown } | undefined)?.value === true;
  }

  private async assertOwned(name: string): Promise<void> {
    this.assertOpen();
    if (!(await this.isOwned(name))) {
      throw new FlotillaError(
        'E_SYSTEMD_NOT_OWNED',
        `${name} was not installed by flotilla; refusing to change it`,
        { unit: name },
      );
    }
  }

  // ---- state -------------------------------------------------------------------------------------

  async state(name: string): Promise<UnitState> {
    this.assertOpen();
    validateUnitName(name);
    const { props } = await this.reader.fetchProps(name);
    return applyProperties(emptyState(name), props).state;
  }

  async states(names: readonly string[]): Promise<UnitState[]> {
    this.assertOpen();
    for (const n of names) validateUnitName(n);
    return Promise.all(
      names.map(async (n) => applyProperties(emptyState(n), (await this.reader.fetchProps(n)).props).state),
    );
  }

  async list(names?: readonly string[]): Promise<UnitSummary[]> {
    this.assertOpen();
    if (names === undefined) return this.reader.listAll();
    for (const n of names) validateUnitName(n);
    return this.reader.listByNames(names);
  }

  watch(opts: WatchOptions = {}): UnitWatch {
    this.assertOpen();
    if (opts.units) for (const n of opts.units) validateUnitName(n);
    return this.hub.watch(opts);
  }

  async unitOfPid(pid: number): Promise<string | undefined> {
    this.assertOpen();
    let path: string;
    try {
      [path] = (await this.conn.call(managerCall('GetUnitByPID', 'u', [pid]))) as [string];
    } catch (err) {
      if (dbusErrorName(err) === 'org.freedesktop.systemd1.NoUnitForPID') return undefined;
      throw err;
    }
    const [v] = await this.conn.call(propsCall('Get', path, 'ss', [UNIT, 'Id']));
    const id = (v as { value?: unknown } | undefined)?.value;
    return typeof id === 'string' && id !== '' ? id : undefined;
  }

  async reload(): Promise<void> {
    this.assertOpen();
    await this.conn.call(managerCall('Reload', '', []));
  }

  async reboot(): Promise<void> {
    this.assertOpen();
    await this.conn.call(managerCall('StartUnit', 'ss', ['reboot.target', 'replace-irreversibly']));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.hub.close();
    this.jobs.failAll(new FlotillaError('E_CLOSED', 'the systemd manager was closed'));
    this.conn.close();
    await Promise.resolve();
  }

  /** D-Bus traffic counters (method calls sent, signals received). */
  get stats(): {
    calls: number;
    byMember: ReadonlyMap<string, number>;
    signals: number;
    connects: number;
    fetches: number;
    resyncs: number;
    reloadsSeen: number;
  } {
    return {
      calls: this.conn.stats.calls,
      byMember: new Map(this.conn.stats.byMember),
      reloadsSeen: this.reloadsSeen,
      signals: this.conn.stats.signals,
      connects: this.conn.stats.connects,
      fetches: this.hub.stats.fetches,
      resyncs: this.hub.stats.resyncs,
    };
  }

  // ---- D-Bus helpers -------------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new FlotillaError('E_CLOSED', 'the systemd manager was closed');
  }
}
