/**
 * planAgent, table-driven in the spirit of fleet's agent/reconcile_test.go
 * (TestCalculateTasksForJob) and the user problems it must not repeat: #1086 (restarts on agent
 * restart), #1289/#1690 (stops while the registry is unreachable), failed-unit restart loops.
 */
import { describe, expect, it } from 'vitest';
import {
  AGENT_ACTION_ORDER,
  planAgent,
  type AgentAction,
  type AgentPlanInput,
  type DesiredUnit,
  type ObservedUnit,
  type ReportedState,
} from '../../../src/agent/planner.js';
import type { DesiredState } from '../../../src/registry/types.js';

const H1 = '1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const H2 = '2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
const ME = 'cafebabe00000000000000000000cafe';

function want(name: string, desiredState: DesiredState = 'launched', hash = H1): DesiredUnit {
  return { name, hash, desiredState, body: `[Service]\nExecStart=/bin/${name}\n` };
}

/** `hash: null` = the executor could not tell the installed file's hash. */
function seen(
  activeState: string,
  subState: string,
  hash: string | null = H1,
  loadState = 'loaded',
): ObservedUnit {
  return { loadState, activeState, subState, hash: hash ?? undefined };
}

const running = (hash: string | null = H1) => seen('active', 'running', hash);
const dead = (hash: string | null = H1) => seen('inactive', 'dead', hash);
const failed = (hash: string | null = H1) => seen('failed', 'failed', hash);

interface Case {
  name: string;
  desired?: DesiredUnit[];
  observed?: Record<string, ObservedUnit>;
  registryAvailable?: boolean;
  reported?: Record<string, ReportedState>;
  want: AgentAction[];
}

function plan(c: Omit<Case, 'name' | 'want'>): AgentAction[] {
  const input: AgentPlanInput = {
    machineID: ME,
    desired: c.desired ?? [],
    observed: new Map(Object.entries(c.observed ?? {})),
    registryAvailable: c.registryAvailable ?? true,
  };
  if (c.reported !== undefined) input.reported = new Map(Object.entries(c.reported));
  return planAgent(input);
}

function table(cases: Case[]): void {
  for (const c of cases) {
    it(c.name, () => {
      expect(plan(c)).toEqual(c.want);
    });
  }
}

const install = (u: DesiredUnit, reason: string): AgentAction => ({
  type: 'install',
  name: u.name,
  hash: u.hash,
  body: u.body,
  reason,
});
const load = (...names: string[]): AgentAction => ({
  type: 'load',
  names,
  reason: `unit files changed: ${names.join(', ')}`,
});
const start = (name: string, reason: string): AgentAction => ({ type: 'start', name, reason });
const stop = (name: string, reason: string): AgentAction => ({ type: 'stop', name, reason });
const unload = (name: string, reason: string): AgentAction => ({ type: 'unload', name, reason });
const report = (name: string, reason: string): AgentAction => ({ type: 'report-state', name, reason });
const reportTouched = (name: string, firstReason: string) => report(name, `state changes: ${firstReason}`);

const NEW = 'belongs on this machine (desired state launched) but is not installed';
const NOT_HERE = 'not scheduled to this machine (cafebabe...)';
const CHANGED = 'unit file changed (1111111 → 2222222)';

describe('planAgent: installing and starting', () => {
  table([
    { name: 'nothing desired, nothing installed: nothing to do', want: [] },
    {
      name: 'a new launched unit: install, daemon-reload, start, report',
      desired: [want('a.service')],
      want: [
        install(want('a.service'), NEW),
        load('a.service'),
        start('a.service', 'desired state is launched'),
        reportTouched('a.service', NEW),
      ],
    },
    {
      name: 'a new loaded unit: installed but not started',
      desired: [want('a.service', 'loaded')],
      want: [
        install(
          want('a.service', 'loaded'),
          'belongs on this machine (desired state loaded) but is not installed',
        ),
        load('a.service'),
        reportTouched('a.service', 'belongs on this machine (desired state loaded) but is not installed'),
      ],
    },
    {
      name: 'a unit whose file systemd does not know (load state not-found) is installed again',
      desired: [want('a.service')],
      observed: { 'a.service': seen('inactive', 'dead', H1, 'not-found') },
      want: [
        install(want('a.service'), 'installed file is unknown to systemd (load state not-found)'),
        load('a.service'),
        start('a.service', 'desired state is launched'),
        reportTouched('a.service', 'installed file is unknown to systemd (load state not-found)'),
      ],
    },
    {
      name: 'installed, same hash, dead and desired launched: started',
      desired: [want('a.service')],
      observed: { 'a.service': dead() },
      want: [
        start('a.service', 'desired state is launched but the unit is inactive'),
        reportTouched('a.service', 'desired state is launched but the unit is inactive'),
      ],
    },
    {
      name: 'masked by an administrator: left alone (no start, no rewrite)',
      desired: [want('a.service', 'launched', H2)],
      observed: { 'a.service': seen('inactive', 'dead', H1, 'masked') },
      want: [],
    },
    {
      name: 'desired inactive and not installed: nothing',
      desired: [want('a.service', 'inactive')],
      want: [],
    },
  ]);
});

describe('planAgent: adoption (fleet #1086: no restart after an agent restart)', () => {
  table([
    {
      name: 'installed, same hash, running, desired launched: left alone',
      desired: [want('a.service')],
      observed: { 'a.service': running() },
      want: [],
    },
    {
      name: 'a whole machine of running units after an agent restart: nothing is restarted',
      desired: [want('a.service'), want('b.service'), want('c.service')],
      observed: {
        'a.service': running(),
        'b.service': seen('active', 'exited'),
        'c.service': seen('reloading', 'reload'),
      },
      want: [],
    },
    {
      name: 'activating (starting up): left to settle',
      desired: [want('a.service')],
      observed: { 'a.service': seen('activating', 'start-pre') },
      want: [],
    },
    {
      name: 'deactivating: left to settle (next pass starts it if it ends inactive)',
      desired: [want('a.service')],
      observed: { 'a.service': seen('deactivating', 'stop-sigterm') },
      want: [],
    },
    {
      name: 'installed file hash unknown and running: rewritten, never restarted',
      desired: [want('a.service')],
      observed: { 'a.service': running(null) },
      want: [
        install(
          want('a.service'),
          "the installed file's hash is unknown: rewriting it without restarting the unit",
        ),
        load('a.service'),
        reportTouched(
          'a.service',
          "the installed file's hash is unknown: rewriting it without restarting the unit",
        ),
      ],
    },
    {
      name: 'installed file hash unknown and dead: rewritten and started',
      desired: [want('a.service')],
      observed: { 'a.service': dead(null) },
      want: [
        install(
          want('a.service'),
          "the installed file's hash is unknown: rewriting it without restarting the unit",
        ),
        load('a.service'),
        start('a.service', 'desired state is launched but the unit is inactive'),
        reportTouched(
          'a.service',
          "the installed file's hash is unknown: rewriting it without restarting the unit",
        ),
      ],
    },
  ]);
});

describe('planAgent: failed units are not restarted in a loop (systemd Restart= owns that)', () => {
  table([
    {
      name: 'failed and desired launched: nothing',
      desired: [want('a.service')],
      observed: { 'a.service': failed() },
      want: [],
    },
    {
      name: 'failed and desired loaded: a stop clears the failed state (so stop + start runs it again)',
      desired: [want('a.service', 'loaded')],
      observed: { 'a.service': failed() },
      want: [
        stop(
          'a.service',
          'desired state is loaded and the unit failed: stopping clears the failed state so a later start runs it',
        ),
        reportTouched(
          'a.service',
          'desired state is loaded and the unit failed: stopping clears the failed state so a later start runs it',
        ),
      ],
    },
    {
      name: 'failed, and the file changed: the new version is installed and started once',
      desired: [want('a.service', 'launched', H2)],
      observed: { 'a.service': failed(H1) },
      want: [
        install(want('a.service', 'launched', H2), CHANGED),
        load('a.service'),
        start('a.service', `${CHANGED}: starting the new version`),
        reportTouched('a.service', CHANGED),
      ],
    },
  ]);
});

describe('planAgent: loaded vs launched', () => {
  table([
    {
      name: 'running and desired loaded: stopped (fleetctl stop)',
      desired: [want('a.service', 'loaded')],
      observed: { 'a.service': running() },
      want: [
        stop('a.service', 'desired state is loaded but the unit is active'),
        reportTouched('a.service', 'desired state is loaded but the unit is active'),
      ],
    },
    {
      name: 'activating and desired loaded: stopped',
      desired: [want('a.service', 'loaded')],
      observed: { 'a.service': seen('activating', 'start') },
      want: [
        stop('a.service', 'desired state is loaded but the unit is activating'),
        reportTouched('a.service', 'desired state is loaded but the unit is activating'),
      ],
    },
    {
      name: 'dead and desired loaded: nothing',
      desired: [want('a.service', 'loaded')],
      observed: { 'a.service': dead() },
      want: [],
    },
  ]);
});

describe('planAgent: file changes (hash differs)', () => {
  table([
    {
      name: 'running and launched: stop, install, reload, start',
      desired: [want('a.service', 'launched', H2)],
      observed: { 'a.service': running(H1) },
      want: [
        stop('a.service', `${CHANGED}: stopping the old version`),
        install(want('a.service', 'launched', H2), CHANGED),
        load('a.service'),
        start('a.service', `${CHANGED}: starting the new version`),
        reportTouched('a.service', `${CHANGED}: stopping the old version`),
      ],
    },
    {
      name: 'running and loaded: stop, install, reload (not started)',
      desired: [want('a.service', 'loaded', H2)],
      observed: { 'a.service': running(H1) },
      want: [
        stop('a.service', `${CHANGED}: stopping the old version`),
        install(want('a.service', 'loaded', H2), CHANGED),
        load('a.service'),
        reportTouched('a.service', `${CHANGED}: stopping the old version`),
      ],
    },
    {
      name: 'dead and launched: install, reload, start (nothing to stop)',
      desired: [want('a.service', 'launched', H2)],
      observed: { 'a.service': dead(H1) },
      want: [
        install(want('a.service', 'launched', H2), CHANGED),
        load('a.service'),
        start('a.service', `${CHANGED}: starting the new version`),
        reportTouched('a.service', CHANGED),
      ],
    },
  ]);
});

describe('planAgent: units that do not belong here', () => {
  table([
    {
      name: 'running, no longer scheduled here: stop, then uninstall',
      observed: { 'a.service': running() },
      want: [
        stop('a.service', `${NOT_HERE}: stopping before uninstall`),
        unload('a.service', NOT_HERE),
        load('a.service'),
        reportTouched('a.service', `${NOT_HERE}: stopping before uninstall`),
      ],
    },
    {
      name: 'failed, no longer scheduled here: uninstall only (unload resets the failed state)',
      observed: { 'a.service': failed() },
      want: [unload('a.service', NOT_HERE), load('a.service'), reportTouched('a.service', NOT_HERE)],
    },
    {
      name: 'desired state inactive (fleetctl unload): stop and uninstall, saying so',
      desired: [want('a.service', 'inactive')],
      observed: { 'a.service': running() },
      want: [
        stop('a.service', 'desired state is inactive: stopping before uninstall'),
        unload('a.service', 'desired state is inactive'),
        load('a.service'),
        reportTouched('a.service', 'desired state is inactive: stopping before uninstall'),
      ],
    },
  ]);
});

describe('planAgent: registry unavailable (fleet #1289/#1690/#1145) never stops anything', () => {
  table([
    {
      name: 'no desired state known: an empty plan, running units keep running',
      registryAvailable: false,
      observed: { 'a.service': running(), 'b.service': failed(), 'c.service': dead() },
      want: [],
    },
    {
      name: 'desired loaded but running: not stopped',
      registryAvailable: false,
      desired: [want('a.service', 'loaded')],
      observed: { 'a.service': running() },
      want: [],
    },
    {
      name: 'changed file under a running unit: not replaced (that would stop it)',
      registryAvailable: false,
      desired: [want('a.service', 'launched', H2)],
      observed: { 'a.service': running(H1) },
      want: [],
    },
    {
      name: 'hash unknown under a running unit: not rewritten',
      registryAvailable: false,
      desired: [want('a.service')],
      observed: { 'a.service': running(null) },
      want: [],
    },
    {
      name: 'desired inactive: not stopped',
      registryAvailable: false,
      desired: [want('a.service', 'inactive')],
      observed: { 'a.service': running() },
      want: [],
    },
    {
      name: 'last known desired state still brings dead or missing launched units up; no reports',
      registryAvailable: false,
      desired: [want('a.service'), want('b.service')],
      // other.service is not in the last known desired state: while the registry is away it keeps running.
      observed: { 'other.service': running(), 'a.service': dead() },
      want: [
        install(want('b.service'), NEW),
        load('b.service'),
        start('a.service', 'desired state is launched but the unit is inactive'),
        start('b.service', 'desired state is launched'),
      ],
    },
  ]);

  it('never plans stop or unload, whatever the input', () => {
    const states = [running(), dead(), failed(), seen('activating', 'start'), running(H2), running(null)];
    const desiredStates: (DesiredState | undefined)[] = [undefined, 'inactive', 'loaded', 'launched'];
    for (const o of states) {
      for (const d of desiredStates) {
        const actions = plan({
          registryAvailable: false,
          desired: d === undefined ? [] : [want('a.service', d)],
          observed: { 'a.service': o },
        });
        expect(
          actions.filter((a) => a.type === 'stop' || a.type === 'unload' || a.type === 'report-state'),
        ).toEqual([]);
      }
    }
  });
});

describe('planAgent: ordering and reports', () => {
  it('a mixed batch runs stop → unload → install → load (once) → start → report-state, names sorted', () => {
    const actions = plan({
      desired: [
        want('new.service'),
        want('changed.service', 'launched', H2),
        want('paused.service', 'loaded'),
        want('kept.service'),
        want('dead.service'),
      ],
      observed: {
        'changed.service': running(H1),
        'paused.service': running(),
        'kept.service': running(),
        'dead.service': dead(),
        'gone.service': running(),
        'broken.service': failed(),
      },
    });
    const types = actions.map((a) => a.type);
    const rank = (t: string) => AGENT_ACTION_ORDER.indexOf(t as (typeof AGENT_ACTION_ORDER)[number]);
    expect([...types].sort((a, b) => rank(a) - rank(b))).toEqual(types);
    expect(actions.filter((a) => a.type === 'load')).toEqual([
      load('broken.service', 'changed.service', 'gone.service', 'new.service'),
    ]);
    expect(actions.map((a) => `${a.type} ${a.type === 'load' ? a.names.join(',') : a.name}`)).toEqual([
      'stop changed.service',
      'stop gone.service',
      'stop paused.service',
      'unload broken.service',
      'unload gone.service',
      'install changed.service',
      'install new.service',
      'load broken.service,changed.service,gone.service,new.service',
      'start changed.service',
      'start dead.service',
      'start new.service',
      'report-state broken.service',
      'report-state changed.service',
      'report-state dead.service',
      'report-state gone.service',
      'report-state new.service',
      'report-state paused.service',
    ]);
    for (const a of actions) expect(a.reason.length).toBeGreaterThan(0);
  });

  table([
    {
      name: 'with published states: an up-to-date unit reports nothing',
      desired: [want('a.service')],
      observed: { 'a.service': running() },
      reported: {
        'a.service': { hash: H1, loadState: 'loaded', activeState: 'active', subState: 'running' },
      },
      want: [],
    },
    {
      name: 'with published states: a missing or stale state is reported again',
      desired: [want('a.service'), want('b.service')],
      observed: { 'a.service': running(), 'b.service': running() },
      reported: {
        'a.service': { hash: H1, loadState: 'loaded', activeState: 'activating', subState: 'start' },
      },
      want: [
        report(
          'a.service',
          'published state loaded/activating/start is out of date (now loaded/active/running)',
        ),
        report('b.service', 'no state is published for this unit'),
      ],
    },
    {
      name: 'with published states: a state left for a unit not installed here is reported (deleted)',
      reported: {
        'old.service': { hash: H1, loadState: 'loaded', activeState: 'active', subState: 'running' },
      },
      want: [report('old.service', 'a state is published for a unit that is not installed here')],
    },
  ]);

  it('accepts observed and reported states as plain records', () => {
    const fromRecord = planAgent({
      machineID: ME,
      desired: [want('a.service')],
      observed: { 'a.service': dead() },
      registryAvailable: true,
      reported: {},
    });
    expect(fromRecord).toEqual([
      start('a.service', 'desired state is launched but the unit is inactive'),
      reportTouched('a.service', 'desired state is launched but the unit is inactive'),
    ]);
  });
});
