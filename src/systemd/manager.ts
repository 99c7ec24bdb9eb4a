/**
 * The `SystemdManager` port: flotilla's hands on one machine's systemd.
 *
 * Implementations: `DbusSystemdManager` (dbus-next, dbus-manager.ts) and `FakeSystemdManager`
 * (in memory, fake.ts). Both follow the contracts written on each method below.
 *
 * OWNERSHIP. flotilla only stops, restarts, unloads or changes units it installed: a unit is *owned* when
 * its file (or, for an instance `a@b.service`, its template `a@.service`) lives in our runtime units
 * directory (default `/run/flotilla/units`), or when it is a transient unit whose name carries our
 * transient prefix (default `flotilla-`). Anything else fails with `E_SYSTEMD_NOT_OWNED` before any
 * D-Bus call. Reading state and watching are allowed for every unit.
 *
 * NAMES. Every unit name is validated (`E_UNIT_NAME`) before it becomes part of a path or a D-Bus call.
 *
 * ERRORS. `E_UNIT_NAME`, `E_SYSTEMD_NOT_OWNED`, `E_SYSTEMD_JOB` (a job ended other than `done`; see
 * `SystemdJobError`), `E_SYSTEMD_CALL` (D-Bus error reply), `E_SYSTEMD_UNAVAILABLE` (no bus),
 * `E_CLOSED` (after `close()`).
 */
import { FlotillaError } from '../lib/errors.js';

export type LoadState = 'stub' | 'loaded' | 'not-found' | 'bad-setting' | 'error' | 'merged' | 'masked';
export type ActiveState =
  'active' | 'reloading' | 'inactive' | 'failed' | 'activating' | 'deactivating' | 'maintenance';

/**
 * What systemd says about one unit. Timestamps are milliseconds since the epoch (µs precision kept as
 * a fraction) or `null` for "never". Service-only fields are `null` for other unit types.
 * Plain data: `JSON.stringify` never throws on it.
 */
export interface UnitState {
  name: string;
  description: string | null;
  loadState: LoadState | (string & {});
  activeState: ActiveState;
  subState: string;
  fragmentPath: string | null;
  unitFileState: string | null;
  transient: boolean;
  invocationId: string | null;
  stateChangeTimestamp: number | null;
  activeEnterTimestamp: number | null;
  activeExitTimestamp: number | null;
  inactiveEnterTimestamp: number | null;
  inactiveExitTimestamp: number | null;
  /** Service/socket/mount … `Result` (`success`, `exit-code`, `exec`, `timeout`, `signal` …). */
  result: string | null;
  mainPID: number | null;
  /** CLD_EXITED=1, CLD_KILLED=2, CLD_DUMPED=3; 0 when nothing ran. */
  execMainCode: number | null;
  /** Exit status, or signal number when killed; 203 = EXIT_EXEC (binary missing or not executable). */
  execMainStatus: number | null;
  execMainStartTimestamp: number | null;
  execMainExitTimestamp: number | null;
  nRestarts: number | null;
}

/** One row of a single-call listing (`ListUnits`/`ListUnitsByNames`). */
export interface UnitSummary {
  name: string;
  description: string;
  loadState: LoadState | (string & {});
  activeState: ActiveState;
  subState: string;
  /** The unit this one follows (device aliases), or "". */
  following: string;
  /** Object path as systemd reported it. */
  path: string;
  /** Queued job id, 0 when none. */
  jobId: number;
  jobType: string;
}

/** Result names of `JobRemoved`. Anything but `done` rejects with `SystemdJobError`. */
export type JobResultName =
  | 'done'
  | 'canceled'
  | 'timeout'
  | 'failed'
  | 'dependency'
  | 'skipped'
  | 'invalid'
  | 'assert'
  | 'unsupported'
  | 'collected'
  | 'once'
  | (string & {});

export type JobKind = 'start' | 'stop' | 'restart';

export interface JobOutcome {
  unit: string;
  kind: JobKind;
  /** The job's object path. */
  job: string;
  result: 'done';
  /** True when JobRemoved was lost (bus restart) and success was inferred from the unit's state. */
  inferred: boolean;
}

export interface JobOptions {
  /** Client-side deadline for JobRemoved (default 90 s). The job itself keeps running if it passes. */
  timeoutMs?: number;
}

/** A failed job: `result` is the JobRemoved result; `state` and `journal` explain why. */
export class SystemdJobError extends FlotillaError {
  readonly unit: string;
  readonly kind: JobKind;
  readonly result: JobResultName;
  readonly state: UnitState | undefined;
  readonly journal: readonly string[];

  constructor(args: {
    unit: string;
    kind: JobKind;
    job: string;
    result: JobResultName;
    state?: UnitState | undefined;
    journal?: readonly string[];
    clientTimeout?: boolean;
  }) {
    const why = args.state?.result ? ` (unit result: ${args.state.result}` : '';
    const code = args.state?.execMainStatus;
    const status =
      code !== null && code !== undefined && args.state?.execMainCode
        ? `, status ${code}${args.state.execMainCode === 1 && exitStatusName(code) ? `/${exitStatusName(code)}` : ''}`
        : '';
    super(
      'E_SYSTEMD_JOB',
      `${args.kind} of ${args.unit} ${args.clientTimeout ? 'got no JobRemoved in time' : `ended with result ${args.result}`}${why}${why ? `${status})` : ''}`,
      {
        unit: args.unit,
        kind: args.kind,
        job: args.job,
        result: args.result,
        unitResult: args.state?.result ?? null,
        execMainStatus: args.state?.execMainStatus ?? null,
        journal: args.journal ?? [],
        ...(args.clientTimeout ? { clientTimeout: true } : {}),
      },
    );
    this.name = 'SystemdJobError';
    this.unit = args.unit;
    this.kind = args.kind;
    this.result = args.result;
    this.state = args.state;
    this.journal = args.journal ?? [];
  }
}

/**
 * systemd's own exit statuses (exit-status.h), set when the service failed in systemd's code between
 * fork and exec: 203/EXEC means the binary is missing or not executable, 217/USER an unknown user.
 */
const EXIT_STATUS: Readonly<Record<number, string>> = {
  200: 'CHDIR',
  201: 'NICE',
  202: 'FDS',
  203: 'EXEC',
  204: 'MEMORY',
  205: 'LIMITS',
  206: 'OOM_ADJUST',
  207: 'SIGNAL_MASK',
  208: 'STDIN',
  209: 'STDOUT',
  210: 'CHROOT',
  211: 'IOPRIO',
  212: 'TIMERSLACK',
  213: 'SECUREBITS',
  214: 'SETSCHEDULER',
  215: 'CPUAFFINITY',
  216: 'GROUP',
  217: 'USER',
  218: 'CAPABILITIES',
  219: 'CGROUP',
  220: 'SETSID',
  222: 'STDERR',
  224: 'PAM',
  225: 'NETWORK',
  226: 'NAMESPACE',
  227: 'NO_NEW_PRIVILEGES',
  228: 'SECCOMP',
  233: 'RUNTIME_DIRECTORY',
  238: 'STATE_DIRECTORY',
  243: 'CREDENTIALS',
};

export function exitStatusName(code: number): string | undefined {
  return EXIT_STATUS[code];
}

export function isJobError(err: unknown, result?: JobResultName): err is SystemdJobError {
  return err instanceof SystemdJobError && (result === undefined || err.result === result);
}

export interface UnitFileSpec {
  name: string;
  contents: string;
}

export interface InstallResult {
  name: string;
  /** Where the file was written, as systemd sees it. */
  path: string;
  /** True when the file's contents differ from what was there (or nothing was). */
  changed: boolean;
  /** True when the unit has an [Install] section and was enabled in runtime mode. */
  enabled: boolean;
}

export interface IOBandwidth {
  /** A block device path (`/dev/vda`) or a path on the file system whose device is meant. */
  device: string;
  bytesPerSecond: number;
}

/** cgroup knobs flotilla uses (also settable on running units with `setResources`). */
export interface ResourceLimits {
  cpuWeight?: number;
  ioWeight?: number;
  ioReadBandwidthMax?: readonly IOBandwidth[];
  ioWriteBandwidthMax?: readonly IOBandwidth[];
  /** Bytes, or 'infinity'. */
  memoryMax?: number | 'infinity';
  /** Only for new transient units (a process property, not a cgroup one). */
  nice?: number;
}

export interface TransientUnitSpec extends ResourceLimits {
  /** Must end in `.service` and start with the manager's transient prefix. */
  name: string;
  /** argv; argv[0] must be an absolute path. */
  command: readonly string[];
  description?: string;
  type?: 'simple' | 'exec' | 'oneshot' | 'forking' | 'notify';
  remainAfterExit?: boolean;
  environment?: Readonly<Record<string, string>>;
  workingDirectory?: string;
  /** Garbage-collect the unit even when it failed (CollectMode=inactive-or-failed). Default true. */
  collect?: boolean;
}

/** A pushed change (a union so that other kinds can be added later). */
export type UnitEvent = {
  type: 'changed';
  unit: string;
  /** The full state after the change. */
  state: UnitState;
  /** The fields that changed (every field for the first event of a named unit). */
  changed: (keyof UnitState)[];
  /** When flotilla received the change (ms since the epoch). */
  at: number;
};

export interface WatchOptions {
  /**
   * Only these units (validated); the first event for each is its full current state (`changed`
   * lists every field), so there is no gap between "read the state" and "watch it".
   * Omitted: every unit systemd reports changes for, from now on (no initial events).
   */
  units?: readonly string[];
}

/** An event stream. `close()` (or breaking out of `for await`) ends it. */
export interface UnitWatch extends AsyncIterable<UnitEvent> {
  close(): void;
}

export interface SystemdManager {
  /**
   * Installs one unit: writes the file atomically (temp, fsync, rename, 0644) into the units directory,
   * `LinkUnitFiles(runtime, force)`, `EnableUnitFiles(runtime)` when it has [Install], then `Reload`.
   * Refuses (`E_SYSTEMD_NOT_OWNED`) when a unit of that name is loaded from a file outside our directory.
   */
  install(name: string, contents: string): Promise<InstallResult>;
  /** Same as `install` for many units, with one `Reload` at the end. Nothing is written unless all names are valid. */
  installMany(units: readonly UnitFileSpec[]): Promise<InstallResult[]>;
  /** Stop, disable, ResetFailedUnit, remove the file, reload. A unit that is not installed is a no-op. */
  uninstall(name: string): Promise<void>;
  /** Same as `uninstall` for many units (stops in parallel), with one `Reload` at the end. */
  uninstallMany(names: readonly string[]): Promise<void>;
  /** StartUnit(name, "replace"); resolves on JobRemoved `done`, else rejects with SystemdJobError. */
  start(name: string, opts?: JobOptions): Promise<JobOutcome>;
  stop(name: string, opts?: JobOptions): Promise<JobOutcome>;
  restart(name: string, opts?: JobOptions): Promise<JobOutcome>;
  /** StartTransientUnit with cgroup properties; resolves when its start job is done. */
  startTransient(spec: TransientUnitSpec, opts?: JobOptions): Promise<JobOutcome>;
  /** SetUnitProperties(runtime=true) on an owned, loaded unit (e.g. throttle IO while it runs). */
  setResources(name: string, limits: ResourceLimits): Promise<void>;
  /** The full state of one unit (loads it if needed; a missing unit has loadState `not-found`). */
  state(name: string): Promise<UnitState>;
  /** Full states of many units, in the order given. */
  states(names: readonly string[]): Promise<UnitState[]>;
  /** One D-Bus call: the given units (ListUnitsByNames) or every loaded unit (ListUnits). */
  list(names?: readonly string[]): Promise<UnitSummary[]>;
  /** Pushed change events (PropertiesChanged), plus a periodic resync as a safety net. */
  watch(opts?: WatchOptions): UnitWatch;
  /** Whether flotilla installed this unit (see OWNERSHIP). */
  isOwned(name: string): Promise<boolean>;
  /** The unit a process belongs to (Manager.GetUnitByPID), undefined when it belongs to none. */
  unitOfPid(pid: number): Promise<string | undefined>;
  /** Manager.Reload (daemon-reload). */
  reload(): Promise<void>;
  /**
   * `systemctl reboot`: StartUnit("reboot.target", "replace-irreversibly"); resolves once the job is
   * queued (the reboot then stops everything, this process included).
   */
  reboot(): Promise<void>;
  /** Ends watches, fails pending jobs with E_CLOSED, closes the bus. */
  close(): Promise<void>;
}
