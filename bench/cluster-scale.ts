/**
 * `npm run bench -- cluster-scale [--machines N] [--units M] [--idle S] [--ttl S] [--concurrency C]
 *                                  [--timeout S] [--witness probe|full|off]`
 *
 * The cluster issue's scale benchmark: N simulated machines (default 1,000) and M units (default
 * 10,000) against a real, private single-member etcd (test/support/etcd-single.ts), everything in
 * this one process. fleet stated a limit of 100 machines and 1,000 units.
 *
 * What is simulated, and how:
 *   - Each machine has its own presence lease (`LeaseKeeper`, real etcd lease, agent_ttl = --ttl,
 *     default 30 s, renewed every ttl/3), its own `MachineRecord` (region/disk metadata) registered
 *     on that lease, its own in-memory `FakeSystemdManager` (src/systemd/fake.ts, the stand-in behind
 *     the SystemdManager interface) and its own unmodified `MachineAgent`.
 *   - All machines share one etcd client (`EtcdKvStore`: one gRPC connection, one keepalive stream
 *     for all leases) and ONE `ClusterView`: one snapshot and one etcd watch for the process.
 *   - Machine 0 is wired exactly like the daemon (src/daemon/daemon.ts): its agent and the one
 *     `Engine` (the leader, on machine 0's presence lease) listen to the shared ClusterView
 *     directly. This "witness" agent shows what one real agent costs.
 *   - Machines 1..N-1 get per-machine views routed from the shared one (bench/sim/agent-views.ts):
 *     the same MachineAgent, woken only by changes that concern its machine. Without that, the
 *     N agents would each recompute from the whole cluster on every revision on ONE CPU (N× what
 *     any real machine does), and the benchmark would measure the simulation.
 *   - A counting proxy around the store (bench/sim/counting-store.ts) counts requests at the
 *     client; etcd's /metrics (bench/sim/etcd-metrics.ts) counts them at the server.
 *
 * Phases: join (leases + machine records) → agents and engine start → create M units (inactive,
 * `--concurrency` parallel createUnit txns) → set them all `launched` (setDesiredState, same
 * concurrency) → wait until every unit has a schedule record with a machine, then until every unit
 * is reported active by its agent → settle 5 s → count etcd requests for --idle s (default 30) →
 * memory, plan time and probes → clean up (agents, engine, leases revoked, etcd stopped) always.
 */
import { createHash } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import { ClusterView } from '../src/registry/cluster-view.js';
import { MachineAgent } from '../src/agent/agent.js';
import { Engine } from '../src/engine/engine.js';
import { EtcdKvStore } from '../src/registry/etcd.js';
import { LeaseKeeper } from '../src/registry/lease.js';
import { Registry } from '../src/registry/registry.js';
import type { MachineRecord } from '../src/registry/types.js';
import { FakeSystemdManager } from '../src/systemd/fake.js';
import type { Logger } from '../src/lib/log.js';
import { UnitFile } from '../src/unit/index.js';
import { startSingleEtcd, type SingleEtcd } from '../test/support/etcd-single.js';
import { AgentViewRouter } from './sim/agent-views.js';
import { CountingKvStore, type CallStat } from './sim/counting-store.js';
import { diff, scrape, type Counters } from './sim/etcd-metrics.js';
import { watchFaults, type FaultLog } from './sim/etcd3-faults.js';
import { fullRead } from './sim/full-read.js';
import { nowMs } from './stats.js';
import { isCode } from '../src/lib/errors.js';
import { fmt, printTable } from './table.js';

type Row = (string | number)[];

interface Options {
  machines: number;
  units: number;
  idleSec: number;
  ttl: number;
  concurrency: number;
  timeoutSec: number;
  witness: 'full' | 'probe' | 'off';
}

function parseArgs(args: string[]): Options {
  const num = (name: string, def: number): number => {
    const i = args.indexOf(`--${name}`);
    if (i < 0) return def;
    const v = Number(args[i + 1]);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number`);
    return v;
  };
  return {
    machines: Math.floor(num('machines', 1000)),
    units: Math.floor(num('units', 10_000)),
    idleSec: num('idle', 30),
    ttl: Math.floor(num('ttl', 30)),
    concurrency: Math.floor(num('concurrency', 64)),
    timeoutSec: num('timeout', 240),
    witness: ((): Options['witness'] => {
      const i = args.indexOf('--witness');
      const v = i >= 0 ? args[i + 1] : 'probe';
      if (v !== 'full' && v !== 'probe' && v !== 'off') throw new Error('--witness full|probe|off');
      return v;
    })(),
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Run fn(0..n-1) with at most `conc` in flight. */
async function pool(n: number, conc: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(conc, n) }, async () => {
      for (let i = next++; i < n; i = next++) await fn(i);
    }),
  );
}

/** Poll `pred` until true; resolves to the time it became true (nowMs), or undefined on timeout. */
async function waitFor(pred: () => boolean, timeoutMs: number, everyMs = 25): Promise<number | undefined> {
  const end = nowMs() + timeoutMs;
  for (;;) {
    if (pred()) return nowMs();
    if (nowMs() > end) return undefined;
    await sleep(everyMs);
  }
}

/** A logger that keeps counts of warnings (by message) and drops the rest. */
function countingLogger(
  stage: () => string,
): Logger & { warnings: Map<string, { n: number; example: string }> } {
  const warnings = new Map<string, { n: number; example: string }>();
  return {
    warnings,
    debug: () => undefined,
    info: () => undefined,
    error: () => undefined,
    warn: (fields, msg) => {
      // Group by what failed and why, not by unit.
      const key = (
        typeof fields.action === 'string'
          ? `${fields.action} failed: ${String(fields.err)}`
          : `${msg}: ${String(fields.err)}`
      ).replace(/\d+(\.\d+)?/g, 'N');
      const w = warnings.get(key) ?? {
        n: 0,
        example: `first during ${stage()}: ${JSON.stringify(fields).slice(0, 160)}`,
      };
      w.n++;
      warnings.set(key, w);
    },
  };
}

function machineId(i: number): string {
  return createHash('md5').update(`bench-machine-${i}`).digest('hex');
}

/** The unit mix (like test/unit/engine/scale.test.ts): plain, metadata, Conflicts= template, MachineOf pairs. */
function unitMix(units: number, machines: number): { name: string; body: string }[] {
  const web = Math.min(Math.floor(units / 10), machines); // one web@ per machine at most (Conflicts)
  const pairs = Math.floor(units / 20);
  const out: { name: string; body: string }[] = [];
  const unit = (name: string, fleet: string[]): void => {
    const text =
      `[Unit]\nDescription=bench unit ${name}\n\n[Service]\nExecStart=/usr/bin/sleep infinity\n` +
      (fleet.length ? `\n[X-Fleet]\n${fleet.join('\n')}\n` : '');
    out.push({ name, body: UnitFile.parse(text).serialize() });
  };
  for (let i = 0; i < web; i++) unit(`web@${i}.service`, ['Conflicts=web@*.service']);
  for (let i = 0; i < pairs; i++) {
    unit(`db-${i}.service`, []);
    unit(`app-${i}.service`, [`MachineOf=db-${i}.service`]);
  }
  for (let i = 0; out.length < units; i++) {
    unit(
      `svc-${i}.service`,
      i % 7 === 0 ? ['MachineMetadata="region=eu" "region=us"', 'MachineMetadata=disk=ssd'] : [],
    );
  }
  return out;
}

interface Mem {
  rss: number;
  heap: number;
}
const MB = 1024 * 1024;

export async function scaleBench(args: string[]): Promise<Row[]> {
  const o = parseArgs(args);
  const progress = (msg: string) =>
    console.error(`[cluster-scale ${new Date().toISOString().slice(11, 19)}] ${msg}`);
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const mem = (): Mem => {
    gc();
    gc();
    const m = process.memoryUsage();
    return { rss: m.rss / MB, heap: m.heapUsed / MB };
  };

  const rows: Row[] = [];
  const row = (metric: string, value: string | number, target = '', fleet = '', result = '') =>
    rows.push([metric, value, target, fleet, result]);
  let stage = 'start';
  const log = countingLogger(() => stage);
  /** Client errors of the benchmark's own writes (the user's fleetctl would have seen them), by message. */
  const clientErrors = new Map<string, number>();
  /**
   * The benchmark's own writes retry E_REGISTRY_UNAVAILABLE (counted) so that one overloaded moment
   * does not end the run; a create whose first attempt landed comes back as E_CONFLICT: done.
   */
  const retried = async (fn: () => Promise<unknown>): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      try {
        await fn();
        return;
      } catch (err) {
        if (attempt > 0 && isCode(err, 'E_CONFLICT')) return;
        if (!isCode(err, 'E_REGISTRY_UNAVAILABLE') || attempt >= 20) throw err;
        const m = (err as Error).message.replace(/\d+(\.\d+)?s/g, 'Ns').slice(0, 160);
        clientErrors.set(m, (clientErrors.get(m) ?? 0) + 1);
        await sleep(Math.min(2000, 100 * 2 ** attempt));
      }
    }
  };
  const cleanup: (() => Promise<void> | void)[] = [];
  let etcd: SingleEtcd | undefined;
  const onSignal = () => {
    progress('interrupted: cleaning up');
    void runCleanup().finally(() => process.exit(130));
  };
  const runCleanup = async () => {
    for (const fn of cleanup.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        progress(`cleanup step failed: ${(err as Error).message}`);
      }
    }
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  // Health of the run, reported whether it completes or not.
  let leaseErrors = 0;
  let leasesLost = 0;
  const leaseLostStages = new Set<string>();
  const leaseErrorKinds = new Map<string, number>();
  let faults: FaultLog | undefined;
  const diagnostics = (): void => {
    if (faults) {
      row(
        'etcd3 client: channel resets / circuit-breaker openings',
        `${faults.resets} / ${faults.breaks}`,
        '0 / 0',
        '',
        faults.resets === 0 ? 'ok' : 'MISSED',
      );
      for (const e of faults.events) row(`  ${e}`, '');
    }
    row(
      'presence leases lost (expired) / renewal errors / warnings logged',
      `${leasesLost}${leasesLost ? ` (during ${[...leaseLostStages].join(', ')})` : ''} / ${leaseErrors} / ` +
        `${[...log.warnings.values()].reduce((a, w) => a + w.n, 0)}`,
      '0 / 0 / 0',
      '',
      leasesLost === 0 ? 'ok' : 'MISSED',
    );
    for (const [m, n] of clientErrors)
      row(`  benchmark client error (retried): ${m}`, `${n}x`, '', '', 'MISSED');
    for (const [m, n] of leaseErrorKinds) row(`  lease renewal error: ${m}`, `${n}x`);
    for (const [msg, w] of log.warnings) row(`  warning: ${msg}`, `${w.n}x, ${w.example}`);
  };

  try {
    const mem0 = mem();
    const load0 = loadavg()[0]!;
    etcd = await startSingleEtcd();
    const etcdRef = etcd;
    cleanup.push(() => etcdRef.stop());
    const inner = new EtcdKvStore({ endpoints: [etcd.endpoint], prefix: '/flotilla/' });
    const store = new CountingKvStore(inner);
    const tStart = nowMs();
    stage = 'join';
    const fl = watchFaults(inner.client, () => `${fmt((nowMs() - tStart) / 1000)} s (${stage})`);
    faults = fl;
    cleanup.push(() => store.close());
    const registry = new Registry(store);
    progress(`etcd ${etcd.endpoint} (pid ${etcd.pid}); ${o.machines} machines, ${o.units} units`);

    // ---- join: leases and machine records -------------------------------------------------
    const ids = Array.from({ length: o.machines }, (_, i) => machineId(i));
    const records: MachineRecord[] = ids.map((id, i) => ({
      id,
      publicIP: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      metadata: { region: ['eu', 'us', 'ap'][i % 3]!, disk: i % 4 === 0 ? 'ssd' : 'hdd' },
      version: 'bench',
    }));
    const keepers: LeaseKeeper[] = [];
    cleanup.push(() =>
      pool(keepers.length, o.concurrency, async (i) => {
        await keepers[i]!.stop(true);
      }),
    );
    const memBeforeJoin = mem();
    const tJoin = nowMs();
    await pool(o.machines, o.concurrency, async (i) => {
      const k = new LeaseKeeper(store, o.ttl);
      keepers[i] = k;
      await k.start();
      await registry.registerMachine(records[i]!, k.id!);
      k.on('error', (err) => {
        leaseErrors++;
        const m = err.message.replace(/lease \d+/g, 'lease N').slice(0, 200);
        leaseErrorKinds.set(m, (leaseErrorKinds.get(m) ?? 0) + 1);
      });
      k.on('lost', () => {
        leasesLost++;
        leaseLostStages.add(stage);
      });
      k.on('granted', (id) => void registry.registerMachine(records[i]!, id).catch(() => undefined));
    });
    const joinMs = nowMs() - tJoin;
    progress(`joined ${o.machines} machines in ${fmt(joinMs / 1000)} s`);

    // ---- one view, agents, engine ----------------------------------------------------------
    const view = new ClusterView(registry);
    view.setMaxListeners(100);
    view.on('error', () => undefined);
    cleanup.push(() => view.stop());
    const router = new AgentViewRouter(view, store);
    // View events that wake every real agent (MachineAgent reacts to these kinds).
    let agentWakingEvents = 0;
    view.on('changed', (kinds) => {
      if (kinds.has('job') || kinds.has('schedule') || kinds.has('body') || kinds.has('machine'))
        agentWakingEvents++;
    });
    await view.start();

    const systemds: FakeSystemdManager[] = [];
    const agents: MachineAgent[] = [];
    cleanup.push(async () => {
      await Promise.all(agents.map((a) => a.shutdown(false)));
      await Promise.all(systemds.map((s) => s.close()));
    });
    for (let i = 0; i < o.machines; i++) {
      const systemd = new FakeSystemdManager();
      systemds.push(systemd);
      const agent = new MachineAgent({
        registry,
        view: router.view(ids[i]!).asClusterView(),
        systemd,
        lease: keepers[i]!,
        machine: records[i]!,
        unitsDir: `/nonexistent/flotilla-bench-scale/${ids[i]!}`,
        log,
        resyncMs: 10_000, // the daemon's default: max(5 s, 5 × engine_reconcile_interval)
      });
      agents.push(agent);
      await agent.start();
    }

    // The witness: one more, unrouted MachineAgent for machine 0 on the shared ClusterView, wired
    // like the daemon's, so it wakes on every revision and recomputes from the whole cluster, as
    // every real agent does. It has its own fake systemd and no lease (so it never writes: publish()
    // returns without a lease); it only shows what one real agent costs. Its `changed` listener is
    // bracketed: its reconcile runs synchronously inside it when there is nothing to do.
    const w = { ms: 0, emits: 0, t0: 0, agent: undefined as MachineAgent | undefined };
    const attachWitness = async () => {
      const systemd = new FakeSystemdManager();
      systemds.push(systemd);
      const agent = new MachineAgent({
        registry,
        view,
        systemd,
        lease: { id: undefined },
        machine: records[0]!,
        unitsDir: '/nonexistent/flotilla-bench-scale/witness',
        log,
        resyncMs: 10_000,
      });
      agents.push(agent);
      view.on('changed', () => {
        w.t0 = performance.now();
      });
      await agent.start();
      view.on('changed', () => {
        w.ms += performance.now() - w.t0;
        w.emits++;
      });
      await agent.firstReconcile;
      w.agent = agent;
    };
    if (o.witness === 'full') await attachWitness();

    // The Engine (leader) on machine 0's presence lease, as the daemon wires it. Every plan and its
    // duration is counted (Engine sets stats.lastPlanMs once per plan).
    const plan = { total: 0, max: 0, last: 0, plans: 0 };
    const engines: Engine[] = [];
    cleanup.push(async () => {
      for (const e of engines) await e.stop(true);
    });
    const startEngine = async (): Promise<Engine> => {
      const e = new Engine({
        registry,
        view,
        lease: keepers[0]!,
        machineID: ids[0]!,
        log,
        intervalMs: 2000, // engine_reconcile_interval default
      });
      Object.defineProperty(e.stats, 'lastPlanMs', {
        enumerable: true,
        get: () => plan.last,
        set: (v: number) => {
          plan.last = v;
          plan.total += v;
          plan.plans++;
          plan.max = Math.max(plan.max, v);
        },
      });
      engines.push(e);
      e.start();
      if ((await waitFor(() => e.isLeader, o.timeoutSec * 1000)) === undefined)
        throw new Error(`the engine did not become leader within ${o.timeoutSec} s`);
      return e;
    };
    let engine = await startEngine();
    await Promise.all(agents.map((a) => a.firstReconcile));
    const memJoined = mem();
    progress('agents and engine up');

    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    cleanup.push(() => void loop.disable());
    // What filled the longest stall: a 5 ms timer notes how many watch batches were applied and how
    // many engine plans ran since its previous run; the worst gap per phase is kept.
    let stall = { ms: 0, batches: 0, plans: 0 };
    let last = { t: performance.now(), batches: store.watchBatches, plans: plan.plans };
    const stallTimer = setInterval(() => {
      const now = { t: performance.now(), batches: store.watchBatches, plans: plan.plans };
      if (now.t - last.t > stall.ms) {
        stall = { ms: now.t - last.t, batches: now.batches - last.batches, plans: now.plans - last.plans };
      }
      last = now;
    }, 5);
    cleanup.push(() => clearInterval(stallTimer));
    /** Event-loop delay since the previous phase() (ms): the simulation's own health check. */
    const loopSince = () => {
      const r = { max: loop.max / 1e6, p99: loop.percentile(99) / 1e6, stall };
      loop.reset();
      stall = { ms: 0, batches: 0, plans: 0 };
      return r;
    };
    const ticker = setInterval(() => {
      const snap = view.snap;
      progress(
        `… revision ${view.revision}, jobs ${snap?.jobs.size ?? 0}, schedules ${snap?.schedules.size ?? 0}, ` +
          `states ${snap?.states.size ?? 0}, plans ${plan.plans}, loop delay max ${fmt(loop.max / 1e6)} ms, ` +
          `heap ${fmt(process.memoryUsage().heapUsed / MB)} MB, lease errors ${leaseErrors}` +
          (leaseErrors ? ` (${[...leaseErrorKinds].map(([m, n]) => `${n}x ${m}`).join('; ')})` : ''),
      );
    }, 15_000);
    cleanup.push(() => clearInterval(ticker));
    const phase = () => ({
      loop: loopSince(),
      t: nowMs(),
      cpu: process.cpuUsage(),
      plans: plan.plans,
      planMs: plan.total,
      witness: w.agent?.reconciles ?? 0,
      witnessMs: w.ms,
      witnessEmits: w.emits,
      agents: agents.reduce((s, a) => s + (a === w.agent ? 0 : a.reconciles), 0),
      batches: store.watchBatches,
      waking: agentWakingEvents,
      resets: fl.resets,
      breaks: fl.breaks,
      client: store.snapshot(),
    });
    type Phase = ReturnType<typeof phase>;
    const cpuSec = (a: Phase, b: Phase) => (b.cpu.user + b.cpu.system - a.cpu.user - a.cpu.system) / 1e6;

    // ---- submit units ----------------------------------------------------------------------
    const mix = unitMix(o.units, o.machines);
    stage = 'submit';
    const pCreate0 = phase();
    await pool(mix.length, o.concurrency, async (i) => {
      await retried(() => registry.createUnit(mix[i]!.name, mix[i]!.body, 'inactive'));
    });
    const pCreate1 = phase();
    const createSec = (pCreate1.t - pCreate0.t) / 1000;
    progress(`created ${mix.length} units in ${fmt(createSec)} s`);
    const tViewCaught = await waitFor(() => (view.snap?.jobs.size ?? 0) >= mix.length, 120_000);
    const pCreate2 = phase();
    progress(
      `view has all jobs ${tViewCaught ? fmt((tViewCaught - pCreate1.t) / 1000) : '(timeout)'} s later`,
    );

    // ---- launch and place ------------------------------------------------------------------
    const placed = (): number => {
      let n = 0;
      for (const r of view.snap?.schedules.values() ?? []) if (r.machineID !== undefined) n++;
      return n;
    };
    const active = (): number => {
      const snap = view.snap;
      if (!snap) return 0;
      let n = 0;
      for (const [name, r] of snap.schedules) {
        if (r.machineID === undefined) continue;
        if (snap.states.get(name)?.get(r.machineID)?.activeState === 'active') n++;
      }
      return n;
    };
    // The engine is stopped while the units are launched, so that placement is measured on its own:
    // a fresh engine (a new leader finding M launched, unplaced units) from its start to the last
    // schedule record. With an engine running during the launch it places units as fast as the
    // launch writes arrive (here bounded by etcd's write rate): the streaming phase measures that.
    await engine.stop(true);
    stage = 'launch';
    const pLaunch0 = phase();
    await pool(mix.length, o.concurrency, async (i) => {
      await retried(() => registry.setDesiredState(mix[i]!.name, 'launched'));
    });
    const pLaunch1 = phase();
    const launchSec = (pLaunch1.t - pLaunch0.t) / 1000;
    progress(
      `launched ${mix.length} units in ${fmt(launchSec)} s with the engine stopped; starting the engine`,
    );
    stage = 'place';
    engine = await startEngine();
    const tPlaced = await waitFor(() => placed() >= mix.length, o.timeoutSec * 1000);
    const pPlaced = phase();
    progress(
      tPlaced
        ? `all placed ${fmt((tPlaced - pLaunch1.t) / 1000)} s after the last launch write`
        : `placement timed out: ${placed()}/${mix.length} placed`,
    );
    stage = 'activate';
    const tActive = await waitFor(() => active() >= mix.length, o.timeoutSec * 1000, 100);
    const pActive = phase();
    progress(
      tActive
        ? `all active ${fmt((tActive - pLaunch1.t) / 1000)} s after the last launch write`
        : `activation timed out: ${active()}/${mix.length} active`,
    );
    const memConverged = mem();
    if (o.witness === 'probe') await attachWitness();

    // ---- idle ------------------------------------------------------------------------------
    await sleep(5000);
    stage = 'idle';
    progress(`counting etcd requests for ${o.idleSec} s of idle`);
    const m0: Counters = await scrape(etcd.endpoint);
    const pIdle0 = phase();
    await sleep(o.idleSec * 1000);
    const m1: Counters = await scrape(etcd.endpoint);
    const pIdle1 = phase();
    const idleSec = (pIdle1.t - pIdle0.t) / 1000;
    const server = diff(m0, m1);

    // ---- probes: full-cluster plan, witness reconcile cost, a full snapshot, view size ------
    const planMsSamples: number[] = [];
    for (let i = 0; i < 5; i++) {
      const before = engine.stats.plans;
      engine.trigger();
      await waitFor(() => engine.stats.plans > before, 10_000, 5);
      planMsSamples.push(plan.last);
      await sleep(50);
    }
    const reconcileSamples: number[] = [];
    const witness = w.agent;
    if (witness) {
      for (let i = 0; i < 20; i++) {
        await sleep(20);
        const r0 = witness.reconciles;
        const t0 = performance.now();
        witness.trigger();
        const dt = performance.now() - t0;
        if (witness.reconciles === r0 + 1) reconcileSamples.push(dt); // ran to the end synchronously
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
    // The witness has been measured; it must not load the one event loop during streaming (a real
    // machine's agent runs on that machine's CPU, not on the engine's).
    if (witness) await witness.shutdown(false);

    // The engine's write path alone: the same M placements written again (identical records) with
    // a leader guard, while nothing else writes and the engine is stopped (it would replan on every
    // one of these revisions). Agents wake on them but have nothing to do.
    stage = 'rewrite';
    let rewrite: { ms: number; ok: boolean } | undefined;
    await engine.stop(true);
    {
      await waitFor(() => view.snap?.leader === undefined, 10_000);
      const guard = await registry.acquireLeadership(ids[0]!, keepers[0]!.id!);
      const recs = [...view.snap!.schedules.values()].filter((r) => r.machineID !== undefined);
      if (guard) {
        const t0 = nowMs();
        const ok = await registry.writeSchedule(guard, recs);
        rewrite = { ms: nowMs() - t0, ok };
        await registry.resignLeadership(guard);
      }
      await sleep(2000);
    }
    await waitFor(() => view.snap?.leader === undefined, 10_000);
    engine = await startEngine();

    // ---- streaming: units submitted launched while the engine runs ---------------------------
    // `fleetctl start` on a loaded cluster: createUnit(…, 'launched') with the engine running; per
    // unit, the time from the acknowledged create to its schedule record and to its active state.
    const S = Math.min(1000, Math.max(10, Math.floor(mix.length / 10)));
    const created = new Map<string, number>();
    const placedAt: number[] = [];
    const activeAt: number[] = [];
    const pending = new Set<string>();
    const pendingActive = new Set<string>();
    let streamDone = false;
    let streamEnd = Infinity;
    const tracker = (async () => {
      while (!streamDone || pending.size > 0 || pendingActive.size > 0) {
        const snap = view.snap!;
        const t = nowMs();
        for (const n of pending) {
          const m = snap.schedules.get(n)?.machineID;
          if (m !== undefined) {
            placedAt.push(t - created.get(n)!);
            pending.delete(n);
            pendingActive.add(n);
          }
        }
        for (const n of pendingActive) {
          const m = snap.schedules.get(n)?.machineID;
          if (m !== undefined && snap.states.get(n)?.get(m)?.activeState === 'active') {
            activeAt.push(t - created.get(n)!);
            pendingActive.delete(n);
          }
        }
        if (streamDone && t - streamEnd > o.timeoutSec * 1000) break;
        await sleep(10);
      }
    })();
    stage = 'stream';
    const pStream0 = phase();
    await pool(S, o.concurrency, async (i) => {
      const name = `stream-${i}.service`;
      const body = UnitFile.parse(
        `[Unit]\nDescription=bench unit ${name}\n\n[Service]\nExecStart=/usr/bin/sleep infinity\n`,
      );
      await retried(() => registry.createUnit(name, body.serialize(), 'launched'));
      created.set(name, nowMs());
      pending.add(name);
    });
    streamEnd = nowMs();
    streamDone = true;
    await tracker;
    const pStream1 = phase();
    progress(`streaming: ${placedAt.length}/${S} placed, ${activeAt.length}/${S} active`);

    // ---- what ClusterView.start() reads: the whole registry in one response --------------------
    stage = 'snapshot';
    let snapshotResult: string;
    try {
      const snap = await registry.snapshot({ bodies: true });
      snapshotResult = `ok (${snap.jobs.size} jobs, ${snap.states.size} states)`;
    } catch (err) {
      snapshotResult = `FAILED: ${(err as Error).message.slice(0, 120)}`;
    }
    let viewMB = NaN;
    let snapshotMB = NaN;
    try {
      const before = mem();
      const copy = await fullRead(etcd.endpoint, '/flotilla/');
      viewMB = mem().heap - before.heap;
      snapshotMB = copy.bytes / MB;
      if (copy.kvs === 0) viewMB = NaN;
    } catch (err) {
      progress(`full read failed: ${(err as Error).message}`);
    }

    // ---- rows ------------------------------------------------------------------------------
    const N = o.machines;
    const M = mix.length;
    const rate = (n: number, sec: number) => `${fmt(n / sec)}/s`;
    const s = (ms: number) => `${fmt(ms / 1000)} s`;
    const clientDiff = (a: Map<string, CallStat>, b: Map<string, CallStat>) => {
      const out = new Map<string, CallStat>();
      for (const [k, v] of b) {
        const p = a.get(k) ?? { calls: 0, ms: 0, errors: 0 };
        if (v.calls !== p.calls)
          out.set(k, { calls: v.calls - p.calls, ms: v.ms - p.ms, errors: v.errors - p.errors });
      }
      return out;
    };

    row(
      'host: CPUs / load average (1 min) at start and end',
      `${cpus().length} / ${fmt(load0)} -> ${fmt(loadavg()[0]!)} (shared machine: timings are inflated)`,
    );
    row('simulated machines (leases + records + fake systemd + agent)', N, '1,000', 'limit 100');
    row('units', M, '10,000', 'limit 1,000');
    row('join: grant lease + register machine', `${s(joinMs)} (${rate(N, joinMs / 1000)})`);
    row(
      `submit: createUnit x${M}, ${o.concurrency} in flight`,
      `${fmt(createSec)} s (${rate(M, createSec)})`,
    );
    row(
      '  engine plans during submit (all units inactive)',
      `${pCreate2.plans - pCreate0.plans} plans, ${fmt((pCreate2.planMs - pCreate0.planMs) / 1000)} s CPU`,
    );
    row(`launch: setDesiredState x${M}`, `${fmt(launchSec)} s (${rate(M, launchSec)})`);
    const placeSec = tPlaced !== undefined ? (tPlaced - pLaunch1.t) / 1000 : NaN;
    row(
      `time to place all units (last launch write -> ${M} schedule records with a machine)`,
      tPlaced !== undefined ? `${fmt(placeSec)} s` : `timeout, ${placed()}/${M} placed`,
      '',
      'n/a',
    );
    row(
      '  placements/s (fresh engine: leadership + plan + guarded writes)',
      tPlaced !== undefined ? Math.round(M / placeSec) : 0,
      '>= 1,000',
      'n/a',
      tPlaced !== undefined && M / placeSec >= 1000 ? 'ok' : 'MISSED',
    );
    const sched = clientDiff(pLaunch1.client, pPlaced.client).get('txn:put:schedule');
    row(
      '  engine work in that window',
      `${pPlaced.plans - pLaunch1.plans} plans, ${fmt(pPlaced.planMs - pLaunch1.planMs)} ms planning; ` +
        `${sched?.calls ?? 0} schedule txns, ${fmt((sched?.ms ?? 0) / Math.max(1, sched?.calls ?? 0))} ms each`,
    );
    row(
      `  engine write path alone: writeSchedule of ${M} placements, nothing else writing`,
      rewrite
        ? `${s(rewrite.ms)} (${rate(M, rewrite.ms / 1000)}, ${fmt(rewrite.ms / Math.ceil(M / 100))} ms per 100-op txn)${rewrite.ok ? '' : ' REFUSED'}`
        : 'not measured (no guard)',
    );
    if (rewrite && tPlaced !== undefined) {
      const capSec = (pPlaced.planMs - pLaunch1.planMs + rewrite.ms) / 1000;
      row(
        '  engine capacity: plan time in the window + write path alone',
        `${Math.round(M / capSec)}/s (${fmt(capSec)} s for ${M})`,
        '>= 1,000',
        '',
        M / capSec >= 1000 ? 'ok' : 'MISSED',
      );
    }
    row(
      'time until all units active (last launch write -> all reported active by their agents)',
      tActive !== undefined ? s(tActive - pLaunch1.t) : `timeout, ${active()}/${M} active`,
      '',
      '',
      tActive !== undefined ? 'ok' : 'MISSED',
    );
    row(
      '  process CPU, launch -> all active',
      `${fmt(cpuSec(pLaunch0, pActive))} s over ${fmt((pActive.t - pLaunch0.t) / 1000)} s wall`,
    );
    row('  watch batches (revisions) delivered, submit -> all active', pActive.batches - pCreate0.batches);

    const pct = (xs: number[], p: number) =>
      [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)] ?? NaN;
    const streamSec = (streamEnd - pStream0.t) / 1000;
    row(
      `streaming: createUnit(launched) x${S} with the engine running, ${o.concurrency} in flight`,
      `${fmt(streamSec)} s (${rate(S, streamSec)}); ${placedAt.length} placed, ${activeAt.length} active`,
      '',
      '',
      placedAt.length === S && activeAt.length === S ? 'ok' : 'MISSED',
    );
    row(
      '  create acknowledged -> placed, p50 / p99',
      `${fmt(pct(placedAt, 50))} / ${fmt(pct(placedAt, 99))} ms`,
    );
    row(
      '  create acknowledged -> active, p50 / p99',
      `${fmt(pct(activeAt, 50))} / ${fmt(pct(activeAt, 99))} ms`,
    );
    row(
      '  engine during streaming',
      `${pStream1.plans - pStream0.plans} plans, ${fmt((pStream1.planMs - pStream0.planMs) / 1000)} s planning ` +
        `(${fmt((pStream1.planMs - pStream0.planMs) / Math.max(1, pStream1.plans - pStream0.plans))} ms each); ` +
        `process CPU ${fmt(cpuSec(pStream0, pStream1))} s over ${fmt((pStream1.t - pStream0.t) / 1000)} s`,
    );

    // Idle.
    const keepalives = server.get('rpc LeaseKeepAlive') ?? 0;
    const expected = (N * 3) / o.ttl;
    let otherServer = 0;
    for (const [k, v] of server) if (k.startsWith('rpc ') && k !== 'rpc LeaseKeepAlive') otherServer += v;
    row(
      `idle etcd requests/s (server, ${fmt(idleSec)} s window)`,
      fmt((keepalives + otherServer) / idleSec),
      'keepalives only',
      'polling',
      otherServer === 0 ? 'ok' : 'MISSED',
    );
    row(
      '  LeaseKeepAlive/s (server)',
      fmt(keepalives / idleSec),
      `${fmt(expected)} (N x 3 / ttl)${idleSec < o.ttl / 3 ? '; window < ttl/3!' : ''}`,
    );
    for (const [k, v] of [...server].sort()) {
      if (!k.startsWith('rpc ') || k === 'rpc LeaseKeepAlive') continue;
      row(`  ${k.slice(4)}/s (server)`, fmt(v / idleSec), '0', '', 'MISSED');
    }
    if (otherServer === 0) row('  Range/Txn/Put/DeleteRange/Watch/LeaseGrant (server)', 0, '0', '', 'ok');
    const idleClient = clientDiff(pIdle0.client, pIdle1.client);
    row(
      '  client-side calls in the window',
      [...idleClient].map(([k, v]) => `${k} ${v.calls}`).join(', ') || 'none',
    );
    row('  idle process CPU', `${fmt((cpuSec(pIdle0, pIdle1) / idleSec) * 100)}% of one core`);
    row(
      '  engine plans at idle (safety-net interval 2 s)',
      `${pIdle1.plans - pIdle0.plans} in ${fmt(idleSec)} s`,
    );

    // Memory and CPU per piece.
    row('memory: process before etcd client (RSS / heap)', `${fmt(mem0.rss)} / ${fmt(mem0.heap)} MB`);
    row(
      `memory: after ${N} machines joined and agents up`,
      `${fmt(memJoined.rss)} / ${fmt(memJoined.heap)} MB`,
    );
    row(
      '  per simulated machine (lease keeper, agent, fake systemd, view)',
      `${fmt(((memJoined.heap - memBeforeJoin.heap) * 1024) / N)} KB heap`,
    );
    row(
      `memory: converged (${M} units placed and active)`,
      `${fmt(memConverged.rss)} / ${fmt(memConverged.heap)} MB`,
    );
    // The copy was read after streaming (M + S units); scale it to M for the per-agent figure.
    const viewAtM = (viewMB * M) / (M + S);
    row(
      `  one full registry copy, parsed (what each machine's ClusterView holds), ${M + S} units`,
      `${fmt(viewMB)} MB heap (response ${fmt(snapshotMB)} MB)`,
    );
    row(
      '  per simulated agent after convergence (excl. the shared view)',
      `${fmt(((memConverged.heap - memJoined.heap - viewAtM) * 1024) / N)} KB heap`,
    );
    row('engine plan time, full cluster (Engine stats.lastPlanMs)', `${fmt(median(planMsSamples))} ms`);
    if (witness) {
      const perReconcile = median(reconcileSamples);
      const revisions = pActive.waking - pCreate0.waking;
      row(
        'witness (one unrouted agent, as every real agent runs): one reconcile at full size',
        `${fmt(perReconcile)} ms (nothing to do)`,
      );
      if (o.witness === 'full') {
        row(
          '  witness, submit -> all active (measured)',
          `${pActive.witness - pCreate0.witness} reconciles on ${pActive.witnessEmits - pCreate0.witnessEmits} view events, ` +
            `${fmt((pActive.witnessMs - pCreate0.witnessMs) / 1000)} s CPU`,
        );
      } else {
        row(
          '  every real agent, submit -> all active (estimate, lower bound)',
          `${revisions} job/schedule/machine revisions wake it x ${fmt(perReconcile)} ms = ` +
            `${fmt((revisions * perReconcile) / 1000)} s CPU per machine`,
        );
      }
      row('  witness reconciles at idle', `${pIdle1.witness - pIdle0.witness} in ${fmt(idleSec)} s`);
    }
    row(
      'event-loop delay max: submit / launch / place / activate / idle / stream',
      [pCreate1, pLaunch1, pPlaced, pActive, pIdle1, pStream1].map((p) => fmt(p.loop.max)).join(' / ') +
        ' ms',
    );
    row(
      '  longest stall per phase: watch batches applied / engine plans in it',
      [pCreate1, pLaunch1, pPlaced, pActive, pIdle1, pStream1]
        .map((p) => `${fmt(p.loop.stall.ms)} ms: ${p.loop.stall.batches}/${p.loop.stall.plans}`)
        .join('; '),
    );
    row(
      'simulated agents: reconciles submit -> all active / at idle',
      `${pActive.agents - pCreate0.agents} / ${pIdle1.agents - pIdle0.agents}` +
        ` (router: ${router.notifications} wake-ups, ${fmt(router.routeMs / 1000)} s)`,
    );
    row(
      `full registry read as ClusterView.start() does it (registry.snapshot, ${fmt(snapshotMB)} MB)`,
      snapshotResult,
      '',
      '',
      snapshotResult.startsWith('ok') ? 'ok' : 'MISSED',
    );
    row(
      '  channel resets / breaker openings during submit and streaming',
      `${pCreate1.resets - pCreate0.resets}/${pCreate1.breaks - pCreate0.breaks}, ` +
        `${pStream1.resets - pStream0.resets}/${pStream1.breaks - pStream0.breaks}`,
    );
    diagnostics();
    return rows;
  } catch (err) {
    progress(`run failed during ${stage}: ${(err as Error).message}`);
    row(`RUN FAILED during ${stage}`, (err as Error).message.slice(0, 200), '', '', 'MISSED');
    diagnostics();
    return rows;
  } finally {
    progress('cleaning up');
    await runCleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export default async function bench(args: string[]): Promise<void> {
  const o = parseArgs(args);
  const rows = await scaleBench(args);
  printTable(
    `Cluster scale: ${o.machines} simulated machines, ${o.units} units, one process, private single-member etcd`,
    ['metric', 'flotilla', 'target', 'fleet', 'result'],
    rows,
  );
}
