/**
 * Model-based randomised test of the agent's reconcile loop (issue 12 §1): a real MachineAgent over
 * the in-memory FakeSystemdManager (behind the SystemdManager interface), wrapped so that jobs are
 * slow, finish in another order than they began, sometimes fail, and change events arrive late or
 * never. A random schedule of registry changes (schedule here / elsewhere, desired state, a new unit
 * file) is interleaved with all that. Checked for every seed:
 *   - no unit stays active here once it is no longer scheduled here for longer than one pass (a pass
 *     that began after the change ended and the unit still ran: a violation);
 *   - once the changes stop, the agent converges: launched units run the current file (or failed
 *     after an injected start failure: systemd's Restart= owns retries), loaded units are installed
 *     and stopped, everything else is gone.
 * A failing seed is printed (re-run one with AGENT_MODEL_SEED=n).
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { MachineAgent, type AgentView } from '../../../src/agent/agent.js';
import type { ChangeKind, ClusterViewEvents } from '../../../src/registry/cluster-view.js';
import type { SchedulerJob } from '../../../src/engine/types.js';
import { sha1 } from '../../../src/registry/registry.js';
import type { DesiredState, ScheduleRecord, UnitStateRecord } from '../../../src/registry/types.js';
import { FakeSystemdManager } from '../../../src/systemd/fake.js';
import type {
  JobOptions,
  JobOutcome,
  SystemdManager,
  UnitEvent,
  UnitWatch,
} from '../../../src/systemd/manager.js';
import type { Logger } from '../../../src/lib/log.js';
import { UnitFile, fleetRequirements } from '../../../src/unit/index.js';

const ME = 'm1';
const UNITS = ['a.service', 'b.service', 'c.service', 'd.service'];

function rng(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let x = Math.imul(t ^ (t >>> 15), 1 | t);
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
};

const quiet: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => quiet,
} as unknown as Logger;

interface ModelUnit {
  where: 'here' | 'elsewhere' | 'none';
  desired: DesiredState;
  version: number;
}

const bodyOf = (name: string, v: number) =>
  `[Unit]\nDescription=${name} v${v}\n[Service]\nExecStart=/bin/sleep 1000\n`;

/** The registry as the agent sees it, driven by the model (the AgentView port). */
class ModelView extends EventEmitter<ClusterViewEvents> implements AgentView {
  snap = { revision: 1 } as AgentView['snap'];
  available = true;
  readonly units = new Map<string, ModelUnit>();

  private job(name: string, u: ModelUnit): SchedulerJob {
    const body = bodyOf(name, u.version);
    const { warnings: _w, ...requirements } = fleetRequirements(name, UnitFile.parse(body));
    return { name, hash: sha1(body), desiredState: u.desired, requirements };
  }
  jobsFor(machineID: string): SchedulerJob[] {
    return machineID === ME
      ? [...this.units].filter(([, u]) => u.where === 'here').map(([n, u]) => this.job(n, u))
      : [];
  }
  schedulesOn(machineID: string): ScheduleRecord[] {
    return machineID === ME
      ? [...this.units].filter(([, u]) => u.where === 'here').map(([name]) => ({ name, machineID: ME }))
      : [];
  }
  body(job: { name: string; hash: string }): string | undefined {
    const u = this.units.get(job.name);
    return u && sha1(bodyOf(job.name, u.version)) === job.hash ? bodyOf(job.name, u.version) : undefined;
  }
  statesOn(): ReadonlyMap<string, UnitStateRecord> {
    return new Map();
  }
  change(kind: ChangeKind): void {
    this.emit('changed', new Set([kind]));
  }
}

/** Slow, reordered and failing jobs; late and lost change events. Same interface as the driver. */
class ChaosSystemd implements SystemdManager {
  readonly startFailures = new Set<string>();
  constructor(
    readonly inner: FakeSystemdManager,
    private readonly r: () => number,
  ) {}
  private slow = () => turns(Math.floor(this.r() * 4));
  installMany = async (...a: Parameters<SystemdManager['installMany']>) => {
    await this.slow();
    return this.inner.installMany(...a);
  };
  install = (name: string, contents: string) => this.installMany([{ name, contents }]).then((r) => r[0]!);
  uninstallMany = async (names: readonly string[]) => {
    await this.slow();
    await this.inner.uninstallMany(names);
    await this.slow();
  };
  uninstall = (name: string) => this.uninstallMany([name]);
  start = async (name: string, _o?: JobOptions): Promise<JobOutcome> => {
    await this.slow();
    if (this.r() < 0.1) {
      this.inner.fail(name, 'start', 'failed');
      this.startFailures.add(name);
    }
    try {
      return await this.inner.start(name);
    } finally {
      await this.slow(); // the job's end reaches the caller late
    }
  };
  stop = async (name: string, _o?: JobOptions): Promise<JobOutcome> => {
    await this.slow();
    const out = await this.inner.stop(name);
    await this.slow();
    return out;
  };
  restart = (): Promise<JobOutcome> => {
    throw new Error('not modelled');
  };
  startTransient = (): Promise<JobOutcome> => {
    throw new Error('not modelled');
  };
  setResources = (): Promise<void> => {
    throw new Error('not modelled');
  };
  state = (name: string) => this.inner.state(name);
  states = (names: readonly string[]) => this.inner.states(names);
  list = async (names?: readonly string[]) => {
    const l = await this.inner.list(names);
    await this.slow(); // the answer can be older than the state by the time it arrives
    return l;
  };
  /** Events are delayed and a third of them lost: the agent must not depend on them. */
  watch = (): UnitWatch => {
    const w = this.inner.watch();
    const r = this.r;
    async function* gen(): AsyncGenerator<UnitEvent> {
      for await (const ev of w) {
        if (r() < 0.33) continue;
        await turns(Math.floor(r() * 3));
        yield ev;
      }
    }
    const it = gen();
    return { close: () => w.close(), [Symbol.asyncIterator]: () => it };
  };
  isOwned = (name: string) => this.inner.isOwned(name);
  unitOfPid = (pid: number) => this.inner.unitOfPid(pid);
  reboot = () => this.inner.reboot();
  reload = async () => {
    await this.slow();
    await this.inner.reload();
  };
  close = () => this.inner.close();
}

async function runSeed(seed: number): Promise<string | undefined> {
  const r = rng(seed);
  const view = new ModelView();
  const fake = new FakeSystemdManager({ unitsDir: '/nonexistent/flotilla-model' });
  const systemd = new ChaosSystemd(fake, r);
  const agent = new MachineAgent({
    registry: {
      reportUnitStates: () => Promise.reject(new Error('not modelled')),
    },
    view,
    systemd,
    lease: { id: undefined },
    machine: { id: ME, publicIP: '127.0.0.1', metadata: {}, version: 't' },
    unitsDir: '/nonexistent/flotilla-model',
    log: quiet,
    resyncMs: 3_600_000,
  });
  /** unit → agent.reconciles when it stopped being wanted running here. */
  const unwantedSince = new Map<string, number>();
  const wantedRunning = (n: string) => {
    const u = view.units.get(n);
    return u !== undefined && u.where === 'here' && u.desired === 'launched';
  };
  const check = async (): Promise<string | undefined> => {
    const st = await fake.list(UNITS);
    for (const s of st) {
      const since = unwantedSince.get(s.name);
      if (since === undefined) continue;
      const stillHere = view.units.get(s.name)?.where === 'here';
      // Scheduled elsewhere or nowhere: it must be gone within one pass that began after the change.
      if (!stillHere && s.activeState === 'active' && agent.reconciles >= since + 2)
        return `${s.name} still active here ${agent.reconciles - since} passes after it was unscheduled`;
    }
    return undefined;
  };
  try {
    await agent.start();
    const steps = 6 + Math.floor(r() * 14);
    for (let i = 0; i < steps; i++) {
      const name = UNITS[Math.floor(r() * UNITS.length)]!;
      const u = view.units.get(name) ?? { where: 'none', desired: 'inactive', version: 0 };
      const before = u.where === 'here';
      const x = r();
      let kind: ChangeKind = 'schedule';
      if (x < 0.35) u.where = 'here';
      else if (x < 0.55) u.where = r() < 0.5 ? 'elsewhere' : 'none';
      else if (x < 0.8) {
        u.desired = (['launched', 'launched', 'loaded', 'inactive'] as const)[Math.floor(r() * 4)]!;
        kind = 'job';
      } else {
        u.version++;
        kind = 'job';
      }
      view.units.set(name, u);
      if (before && u.where !== 'here') unwantedSince.set(name, agent.reconciles);
      if (u.where === 'here') unwantedSince.delete(name);
      view.change(kind);
      await turns(Math.floor(r() * 6));
      const bad = await check();
      if (bad) return bad;
    }
    // Quiescence: no more changes; every pass must now converge.
    for (let i = 0; i < 20; i++) {
      await agent.idle();
      await turns(3);
      const bad = await check();
      if (bad) return bad;
    }
    await agent.idle();
    for (const name of UNITS) {
      const u = view.units.get(name);
      const [s] = await fake.list([name]);
      const file = fake.files.get(name);
      const here = u !== undefined && u.where === 'here' && u.desired !== 'inactive';
      if (!here) {
        if (file !== undefined || s!.activeState === 'active')
          return `${name}: should be gone, is ${s!.activeState}`;
        continue;
      }
      if (file !== bodyOf(name, u.version)) return `${name}: file is not version ${u.version}`;
      if (wantedRunning(name)) {
        const ok =
          s!.activeState === 'active' || (s!.activeState === 'failed' && systemd.startFailures.has(name));
        if (!ok) return `${name}: desired launched but ${s!.activeState}`;
      } else if (s!.activeState === 'active') return `${name}: desired loaded but active`;
    }
    return undefined;
  } finally {
    await agent.shutdown(false);
    await fake.close();
  }
}

describe('MachineAgent reconcile (model-based, randomised)', () => {
  it('converges and never keeps a unit running here a pass after it was moved away', async () => {
    const only = process.env['AGENT_MODEL_SEED'];
    const seeds = only !== undefined ? [Number(only)] : Array.from({ length: 2000 }, (_, i) => i + 1);
    const failures: string[] = [];
    for (const seed of seeds) {
      const bad = await runSeed(seed);
      if (bad) {
        failures.push(`seed ${seed}: ${bad}`);
        if (failures.length >= 5) break;
      }
    }
    expect(failures, `re-run one with AGENT_MODEL_SEED=<seed>`).toEqual([]);
  }, 60_000);
});
