/**
 * The agent's reconcile planner for ONE machine (fleet `agent/reconcile.go` + `agent/task.go`):
 * the units that belong here (see `plan-desired.ts`) and what systemd reports about the units
 * flotilla installed go in; an ordered list of actions, each with a human reason, comes out. Pure.
 *
 * Desired state → what the unit should look like (fleet Documentation/states.md):
 *   launched            installed and started
 *   loaded              installed, not running
 *   inactive / absent   stopped and uninstalled
 *
 * Rules, per unit:
 * - Not installed (or systemd reports load state `not-found`): install, then start if launched.
 * - Installed with another hash: stop it if it runs, install the new file, start it if launched.
 * - Installed, same hash, running and desired launched: nothing. This is the adoption rule that
 *   beats fleet #1086: after an agent restart, units already running the right file are not
 *   touched (fleet forgot its job states on restart and re-started everything).
 * - Installed but hash unknown (the executor could not tell): rewrite the file without stopping,
 *   then apply the state rules below. A running unit is never restarted just because we could not
 *   read its file.
 * - Desired launched and `inactive` (dead): start. `failed`: nothing. The planner never restarts
 *   a failed unit in a loop; systemd's `Restart=` owns retries (as in fleet). A failed unit runs
 *   again when its file changes, or when the user stops and starts it (desired loaded clears the
 *   failed state, see `stop`). Transitional states (`activating`, `deactivating`, `reloading`)
 *   are left to settle.
 * - Desired loaded and running (or failed): stop.
 * - Not wanted here (not in `desired`, or desired inactive): stop if it runs, then uninstall.
 * - A unit an administrator masked (load state `masked`) is left alone while it should be here.
 * - Units flotilla did not install never appear in `observed`, so they are never touched.
 * - Container units (`beforeStart`, `retry`, set by the agent's Docker hook): where a start would be
 *   planned, a `pull` is planned instead when the image must come first, and nothing while a pull
 *   runs or after it failed (the failure shows as the unit's state). A failed unit with `retry`
 *   (Docker is back) is stopped, which clears the failed state, and started again.
 * - Registry unavailable (`registryAvailable: false`, fleet #1289/#1690/#1145): no stop, no
 *   uninstall, no rewrite of a running unit's file, no state reports. Units that run keep running;
 *   only installs and starts from the last known desired state remain. A caller with no last known
 *   desired state passes `desired: []` and gets an empty plan.
 *
 * Actions come in a safe order (fleet ran unload → load → reload → stop → start; stopping first
 * lets a changed file be replaced under a stopped unit): every `stop`, then `unload`, `install`,
 * one `load` (daemon-reload) if any file changed, `pull`, `start`, and finally `report-state`. Within a
 * group, units are in name order. An executor runs them in order and stops at the first error.
 *
 * What an executor does per action (the contract):
 *   stop          StopUnit(name, "replace"), and wait for the job. A unit that had failed stays
 *                 `failed` (as after `systemctl stop`, and as fleet showed it) until it is started
 *                 again or unloaded.
 *   unload        DisableUnitFiles(runtime) if enabled, ResetFailedUnit, remove the unit file.
 *                 (Any needed stop comes as a separate `stop` before it.)
 *   install       write `body` to the units directory, LinkUnitFiles(runtime, force), and
 *                 EnableUnitFiles(runtime, force) when the body has an [Install] section.
 *   load          one daemon-reload for all the `names` listed.
 *   pull          start pulling `image` in the background and return (a reconcile follows its end).
 *   start         StartUnit(name, "replace") and wait for the job.
 *   report-state  read the unit's state from systemd and publish it; delete the unit's state record
 *                 for this machine when the unit is no longer installed.
 */
import type { DesiredState } from '../registry/types.js';
import { compareNames, shortMachineID } from '../engine/constraints.js';

/** One unit that belongs on this machine. */
export interface DesiredUnit {
  name: string;
  /** Hash of the normalised unit file (sha1 hex). */
  hash: string;
  desiredState: DesiredState;
  /** The unit file as stored in the registry (written by `install`). */
  body: string;
  /**
   * Container units (set by the agent's Docker hook, src/container/units.ts): what must happen
   * before a start. `pull`: plan a `pull` of this image instead of the start (the start follows
   * once the image is there); `wait`: do not start (a pull runs, or it failed: the reason).
   */
  beforeStart?: { pull: string; reason: string } | { wait: string } | undefined;
  /** Container units: start this failed unit again (e.g. Docker is back), with why. */
  retry?: string | undefined;
}

/** What systemd reports about a unit flotilla installed, plus the hash of the installed file. */
export interface ObservedUnit {
  loadState: string;
  activeState: string;
  subState: string;
  /** Hash of the installed file; undefined when the executor could not determine it. */
  hash?: string | undefined;
}

/** The unit state last published to the registry for this machine. */
export interface ReportedState {
  hash: string;
  loadState: string;
  activeState: string;
  subState: string;
}

type Lookup<T> = ReadonlyMap<string, T> | Readonly<Record<string, T>>;

export interface AgentPlanInput {
  /** This machine's ID (used in reasons). */
  machineID: string;
  /** The units that belong here (see `planDesiredUnits`), any desired state. */
  desired: readonly DesiredUnit[];
  /** The units flotilla installed on this machine, by name. */
  observed: Lookup<ObservedUnit>;
  /** False while the registry cannot be read: then nothing is stopped or uninstalled. */
  registryAvailable: boolean;
  /**
   * The states last published for this machine. When given, `report-state` is also planned for
   * units whose published state is missing, stale or no longer needed; when omitted, only for units
   * an action touches.
   */
  reported?: Lookup<ReportedState>;
}

export type AgentAction =
  | { type: 'stop'; name: string; reason: string }
  | { type: 'unload'; name: string; reason: string }
  | { type: 'install'; name: string; hash: string; body: string; reason: string }
  | { type: 'load'; names: string[]; reason: string }
  | { type: 'pull'; name: string; image: string; reason: string }
  | { type: 'start'; name: string; reason: string }
  | { type: 'report-state'; name: string; reason: string };

export type AgentActionType = AgentAction['type'];

/** The order action groups run in. */
export const AGENT_ACTION_ORDER: readonly AgentActionType[] = [
  'stop',
  'unload',
  'install',
  'load',
  'pull',
  'start',
  'report-state',
];

function toMap<T>(lookup: Lookup<T> | undefined): ReadonlyMap<string, T> {
  if (lookup === undefined) return new Map();
  if (lookup instanceof Map) return lookup as ReadonlyMap<string, T>;
  return new Map(Object.entries(lookup as Readonly<Record<string, T>>));
}

/** `active`, `activating`, `reloading`, `refreshing`: the unit runs or is about to. */
function isUp(activeState: string): boolean {
  return ['active', 'activating', 'reloading', 'refreshing'].includes(activeState);
}

/** Anything but `inactive` and `failed` has (or may have) processes that a stop ends. */
function needsStop(activeState: string): boolean {
  return activeState !== 'inactive' && activeState !== 'failed';
}

/** A hash as fleet shows it: 7 hex digits. */
function shortHash(hash: string | undefined): string {
  return hash === undefined ? 'unknown' : hash.slice(0, 7);
}

type UnitAction = Exclude<AgentAction, { type: 'load' }>;
type StepAction = Exclude<UnitAction, { type: 'report-state' }>;

/** Actions collected per group; `actions()` puts them in the safe order. */
class AgentPlan {
  private readonly groups = {
    stop: [] as StepAction[],
    unload: [] as StepAction[],
    install: [] as StepAction[],
    pull: [] as StepAction[],
    start: [] as StepAction[],
  };
  readonly reports: UnitAction[] = [];
  /** Units an action touches → the first reason (their state is reported afterwards). */
  readonly touched = new Map<string, string>();

  add(action: StepAction): void {
    this.groups[action.type].push(action);
    if (!this.touched.has(action.name)) this.touched.set(action.name, action.reason);
  }

  actions(): AgentAction[] {
    const { stop, unload, install, pull, start } = this.groups;
    const out: AgentAction[] = [...stop, ...unload, ...install];
    const changed = [...new Set([...unload, ...install].map((a) => a.name))].sort(compareNames);
    if (changed.length > 0) {
      out.push({ type: 'load', names: changed, reason: `unit files changed: ${changed.join(', ')}` });
    }
    out.push(...pull, ...start);
    out.push(...[...this.reports].sort((a, b) => compareNames(a.name, b.name)));
    return out;
  }
}

/** Plan the actions that bring this machine's units to their desired state. Pure. */
export function planAgent(input: AgentPlanInput): AgentAction[] {
  const desired = new Map<string, DesiredUnit>();
  for (const d of input.desired) desired.set(d.name, d);
  const observed = toMap(input.observed);
  const reported = input.reported === undefined ? undefined : toMap(input.reported);
  const online = input.registryAvailable;
  const plan = new AgentPlan();

  const names = new Set<string>([...desired.keys(), ...observed.keys()]);
  for (const name of [...names].sort(compareNames)) {
    const d = desired.get(name);
    const o = observed.get(name);
    if (d === undefined || d.desiredState === 'inactive') {
      if (o === undefined || !online) continue;
      const why =
        d === undefined
          ? `not scheduled to this machine (${shortMachineID(input.machineID)})`
          : 'desired state is inactive';
      if (needsStop(o.activeState))
        plan.add({ type: 'stop', name, reason: `${why}: stopping before uninstall` });
      plan.add({ type: 'unload', name, reason: why });
      continue;
    }
    planWanted(plan, d, o, online);
  }

  if (online) {
    for (const [name, why] of plan.touched) {
      plan.reports.push({ type: 'report-state', name, reason: `state changes: ${why}` });
    }
    if (reported !== undefined) planStaleReports(plan, desired, observed, reported);
  }
  return plan.actions();
}

/** A unit that should be here (desired loaded or launched). */
function planWanted(plan: AgentPlan, d: DesiredUnit, o: ObservedUnit | undefined, online: boolean): void {
  const { name } = d;
  const launched = d.desiredState === 'launched';
  const install = (reason: string): void =>
    plan.add({ type: 'install', name, hash: d.hash, body: d.body, reason });
  // Container units may need their image first, or must wait (see DesiredUnit.beforeStart).
  const start = (reason: string): void => {
    const before = d.beforeStart;
    if (before === undefined) plan.add({ type: 'start', name, reason });
    else if ('pull' in before) plan.add({ type: 'pull', name, image: before.pull, reason: before.reason });
  };

  if (o === undefined || o.loadState === 'not-found') {
    install(
      o === undefined
        ? `belongs on this machine (desired state ${d.desiredState}) but is not installed`
        : 'installed file is unknown to systemd (load state not-found)',
    );
    if (launched) start('desired state is launched');
    return;
  }

  // An administrator masked it: starting or rewriting it would fail or fight them.
  if (o.loadState === 'masked') return;

  if (o.hash !== undefined && o.hash !== d.hash) {
    const change = `unit file changed (${shortHash(o.hash)} → ${shortHash(d.hash)})`;
    const running = needsStop(o.activeState);
    // Replacing the file under a running unit means stopping it: not while the registry is away.
    if (running && !online) return;
    if (running) plan.add({ type: 'stop', name, reason: `${change}: stopping the old version` });
    install(change);
    if (launched) start(`${change}: starting the new version`);
    return;
  }

  if (o.hash === undefined) {
    if (needsStop(o.activeState) && !online) return;
    install("the installed file's hash is unknown: rewriting it without restarting the unit");
  }

  const state = o.activeState;
  if (launched) {
    // Adoption (#1086): running with the right file → leave it alone. Failed → systemd's Restart=.
    if (state === 'inactive') {
      start('desired state is launched but the unit is inactive');
    } else if (state === 'failed' && d.retry !== undefined && online) {
      plan.add({ type: 'stop', name, reason: `${d.retry}: clearing the failed state` });
      start(d.retry);
    }
    return;
  }
  if (!online) return;
  if (isUp(state)) {
    plan.add({ type: 'stop', name, reason: `desired state is loaded but the unit is ${state}` });
  } else if (state === 'failed') {
    plan.add({
      type: 'stop',
      name,
      reason:
        'desired state is loaded and the unit failed: stopping clears the failed state so a later start runs it',
    });
  }
}

/** report-state for published states that are missing, out of date or no longer wanted. */
function planStaleReports(
  plan: AgentPlan,
  desired: ReadonlyMap<string, DesiredUnit>,
  observed: ReadonlyMap<string, ObservedUnit>,
  reported: ReadonlyMap<string, ReportedState>,
): void {
  const names = new Set<string>([...observed.keys(), ...reported.keys()]);
  for (const name of [...names].sort(compareNames)) {
    if (plan.touched.has(name)) continue;
    const o = observed.get(name);
    const r = reported.get(name);
    let why: string | undefined;
    if (o === undefined) {
      why = 'a state is published for a unit that is not installed here';
    } else if (r === undefined) {
      why = 'no state is published for this unit';
    } else {
      const hash = o.hash ?? desired.get(name)?.hash;
      if (
        r.loadState !== o.loadState ||
        r.activeState !== o.activeState ||
        r.subState !== o.subState ||
        (hash !== undefined && r.hash !== hash)
      ) {
        why = `published state ${r.loadState}/${r.activeState}/${r.subState} is out of date (now ${o.loadState}/${o.activeState}/${o.subState})`;
      }
    }
    if (why !== undefined) plan.reports.push({ type: 'report-state', name, reason: why });
  }
}
