/**
 * Test harness for the CLI: the real API server (src/api ApiServer + FleetV1) over a real embedded
 * registry in a temp dir, on a temp unix socket; the CLI runs in-process through `main()` against it.
 *
 * Two stand-ins, both behind the real interfaces:
 *   - `statusJournalHandler`: a small implementation of the status/journal contract
 *     (/work/briefs/contract-status-journal.md), added to the real server's handlers, because the
 *     agent side of those endpoints is built in parallel (the api helper). Its answers are made up
 *     (no systemctl/journalctl); what is tested is the CLI's side of the contract.
 *   - `simulateCluster`: plays engine and agents for the blocking commands by writing schedule and
 *     state records into the registry (placement: first machine whose metadata matches). The real
 *     engine and agents are tested in test/integration.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FleetV1 } from '../../../src/api/fleet-v1.js';
import { HttpError, type ApiRequest, type ApiResponse } from '../../../src/api/http.js';
import { ApiServer, type Handler } from '../../../src/api/server.js';
import { main } from '../../../src/cli/main.js';
import { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import { Registry, type LeaderGuard } from '../../../src/registry/registry.js';
import type { MachineRecord, UnitStateRecord } from '../../../src/registry/types.js';
import { UnitFile } from '../../../src/unit/index.js';

export interface RunResult {
  code: number;
  out: string;
  err: string;
}

export interface Api {
  dir: string;
  socket: string;
  endpoint: string;
  registry: Registry;
  store: EmbeddedKvStore;
  lease: string;
  guard: LeaderGuard;
  /** Run the CLI in-process against this API (FLEETCTL_ENDPOINT set; `env` adds to it). */
  run(argv: string[], env?: NodeJS.ProcessEnv): Promise<RunResult>;
  close(): Promise<void>;
}

/**
 * Start the API; `extra` adds handlers (e.g. the status/journal stand-in) over the same registry,
 * `before` handlers that see every request first (a request log, or an agent without some route).
 */
export async function startApi(
  extra: (registry: Registry) => Handler[] = () => [],
  opts: { before?: Handler[] } = {},
): Promise<Api> {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-cli-'));
  const store = await EmbeddedKvStore.open({ dataDir: join(dir, 'registry') });
  const registry = new Registry(store);
  const fleet = new FleetV1(registry);
  const server = new ApiServer([...(opts.before ?? []), (req) => fleet.route(req), ...extra(registry)]);
  const socket = join(dir, 'fleet.sock');
  await server.listen({ socketPath: socket });
  const lease = (await store.grantLease(3600)).id;
  const guard = (await registry.acquireLeadership('0'.repeat(32), lease))!;
  const endpoint = `unix://${socket}`;
  return {
    dir,
    socket,
    endpoint,
    registry,
    store,
    lease,
    guard,
    run: (argv, env = {}) => runCli(argv, { FLEETCTL_ENDPOINT: endpoint, ...env }),
    async close() {
      await server.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function runCli(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => (out += s), err: (s) => (err += s) }, env);
  return { code, out, err };
}

// ---- fixture ------------------------------------------------------------------------------------

export const M1 = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
export const M2 = 'a1e5beef0718293a4b5c6d7e8f90a1b2';
export const M3 = 'beef0000c0ffee00c0ffee00c0ffee00';

export const MACHINES: MachineRecord[] = [
  { id: M1, publicIP: '10.214.0.11', metadata: { region: 'eu', disk: 'ssd' }, version: '0.1.0' },
  { id: M2, publicIP: '10.214.0.12', metadata: { region: 'us', rack: '>=3' }, version: '0.1.0' },
  { id: M3, publicIP: '', metadata: {}, version: '0.1.0' },
];

export const unit = (lines: string) => UnitFile.parse(lines).serialize();

export const BODIES: Record<string, string> = {
  'hello.service': unit('[Unit]\nDescription=Hello World\n\n[Service]\nExecStart=/bin/sleep 1000\n'),
  'web@.service': unit(
    '[Unit]\nDescription=Web %i\n\n[Service]\nExecStart=/bin/sleep 1000\n\n[X-Fleet]\nConflicts=web@*.service\n',
  ),
  'global.service': unit(
    '[Unit]\nDescription=Everywhere\n\n[Service]\nExecStart=/bin/sleep 1000\n\n[X-Fleet]\nGlobal=true\n',
  ),
  'db.service': unit('[Service]\nExecStart=/bin/sleep 1000\n'),
  'beef.service': unit('[Unit]\nDescription=Named like a machine\n\n[Service]\nExecStart=/bin/sleep 1000\n'),
  'ap-only.service': unit(
    '[Unit]\nDescription=Needs Asia\n\n[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nMachineMetadata=region=ap\n',
  ),
  'a-very-long-unit-name-for-column-widths.service': unit(
    '[Unit]\nDescription=Ünïcödé wïdths\n\n[Service]\nExecStart=/bin/true\n',
  ),
};

type Placement = {
  unit: string;
  desired: 'inactive' | 'loaded' | 'launched';
  machine?: string;
  reason?: string;
};

/**
 * hello and beef on m1 (running), web@1 on m2 and web@2 on m1 (running), db loaded on m3 (which has
 * no IP), global on m1 and m2, ap-only unplaceable. m1 and m2 share the ID prefix `a1`; `beef` is
 * both a machine prefix (m3) and a unit.
 */
export const PLACEMENTS: Placement[] = [
  { unit: 'hello.service', desired: 'launched', machine: M1 },
  { unit: 'web@.service', desired: 'inactive' },
  { unit: 'web@1.service', desired: 'launched', machine: M2 },
  { unit: 'web@2.service', desired: 'launched', machine: M1 },
  { unit: 'global.service', desired: 'launched' },
  { unit: 'db.service', desired: 'loaded', machine: M3 },
  { unit: 'beef.service', desired: 'launched', machine: M1 },
  { unit: 'ap-only.service', desired: 'launched', reason: 'no machine matches MachineMetadata region=ap' },
  { unit: 'a-very-long-unit-name-for-column-widths.service', desired: 'inactive' },
];

export function stateRecord(
  name: string,
  machineID: string,
  job: 'loaded' | 'launched',
  hash: string,
): UnitStateRecord {
  return job === 'launched'
    ? {
        name,
        machineID,
        hash,
        loadState: 'loaded',
        activeState: 'active',
        subState: 'running',
        jobState: 'launched',
      }
    : {
        name,
        machineID,
        hash,
        loadState: 'loaded',
        activeState: 'inactive',
        subState: 'dead',
        jobState: 'loaded',
      };
}

/** Write the fixture (machines, units, schedules, states) into the API's registry. */
export async function seed(api: Api): Promise<void> {
  for (const m of MACHINES) await api.registry.registerMachine(m, api.lease);
  for (const p of PLACEMENTS) {
    const bodyName = p.unit.replace(/@\d+\./, '@.');
    const job = await api.registry.createUnit(p.unit, BODIES[p.unit] ?? BODIES[bodyName]!, p.desired);
    if (p.machine || p.reason) {
      await api.registry.writeSchedule(api.guard, [
        p.machine ? { name: p.unit, machineID: p.machine } : { name: p.unit, reason: p.reason! },
      ]);
    }
    if (p.machine) {
      await api.registry.reportUnitState(
        stateRecord(p.unit, p.machine, p.desired === 'launched' ? 'launched' : 'loaded', job.hash),
        api.lease,
      );
    }
    if (p.unit === 'global.service') {
      for (const m of [M1, M2])
        await api.registry.reportUnitState(stateRecord(p.unit, m, 'launched', job.hash), api.lease);
    }
  }
}

// ---- a simulated cluster for the blocking commands -------------------------------------------------

/**
 * Every `intervalMs`: place units that want to run (first machine whose metadata has every
 * `MachineMetadata=k=v`; otherwise a reason), report `loaded`/`launched` states for placed units as
 * their desired state says, and unplace inactive ones. Returns a stop function.
 */
export function simulateCluster(
  api: Api,
  opts: { intervalMs?: number; machines?: MachineRecord[] } = {},
): () => Promise<void> {
  const machines = opts.machines ?? MACHINES.slice(0, 2);
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const tick = async () => {
    const snap = await api.registry.snapshot({ bodies: true });
    for (const job of snap.jobs.values()) {
      const sched = snap.schedules.get(job.name);
      const body = snap.bodies.get(job.hash) ?? '';
      const global = /Global=true/.test(body);
      if (job.desiredState === 'inactive' || global) {
        if (sched) await api.registry.clearSchedule(api.guard, [job.name]);
        for (const m of snap.states.get(job.name)?.keys() ?? [])
          await api.registry.clearUnitState(job.name, m);
        continue;
      }
      let machine = sched?.machineID;
      if (!machine) {
        const want = [...body.matchAll(/^MachineMetadata=(\w+)=(\w+)$/gm)].map((m) => [m[1]!, m[2]!]);
        machine = machines.find((m) => want.every(([k, v]) => m.metadata[k!] === v))?.id;
        const rec = machine
          ? { name: job.name, machineID: machine }
          : {
              name: job.name,
              reason: `no machine matches MachineMetadata ${want.map((w) => w.join('=')).join(',')}`,
            };
        if (!sched || sched.reason !== rec.reason) await api.registry.writeSchedule(api.guard, [rec]);
        if (!machine) continue;
      }
      const st = snap.states.get(job.name)?.get(machine);
      if (st?.jobState !== job.desiredState || st.hash !== job.hash) {
        await api.registry.reportUnitState(
          stateRecord(job.name, machine, job.desiredState, job.hash),
          api.lease,
        );
      }
    }
    for (const [name, byMachine] of snap.states) {
      if (!snap.jobs.has(name)) for (const m of byMachine.keys()) await api.registry.clearUnitState(name, m);
    }
  };
  const timer = setInterval(() => {
    running = running.then(() => (stopped ? undefined : tick())).catch(() => undefined);
  }, opts.intervalMs ?? 100);
  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}

// ---- status/journal contract stand-in ------------------------------------------------------------

export interface ContractStandIn {
  handler: Handler;
  /** Status exit code by unit (default 0; systemctl says 3 for an inactive unit). */
  exitCodes: Map<string, number>;
  /** Units whose hosting machine is unreachable (502). */
  unreachable: Set<string>;
  /** Journal requests seen (query), and how many follow streams were closed by the client. */
  journalRequests: URLSearchParams[];
  closedStreams: number;
}

const JOURNAL_MODES = new Set([
  'short',
  'short-iso',
  'short-precise',
  'verbose',
  'json',
  'cat',
  'export',
  'json-pretty',
  'short-monotonic',
  'short-unix',
  'short-full',
  'short-delta',
  'short-iso-precise',
  'json-sse',
  'json-seq',
  'with-unit',
]);

export function statusJournalStandIn(registry: Registry): ContractStandIn {
  const fleet = new FleetV1(registry);
  const self: ContractStandIn = {
    exitCodes: new Map(),
    unreachable: new Set(),
    journalRequests: [],
    closedStreams: 0,
    handler: async (req: ApiRequest): Promise<ApiResponse | undefined> => {
      const m = /^\/flotilla\/v1\/units\/([^/]+)\/(status|journal)$/.exec(req.path);
      if (!m) return undefined;
      const name = decodeURIComponent(m[1]!);
      const what = m[2]!;
      let u: {
        currentState?: string;
        machineID?: string;
        options?: { section: string; name: string; value: string }[];
      };
      try {
        u = (await fleet.getUnit(name)).body as typeof u;
      } catch {
        throw new HttpError(404, `Unit ${name} does not exist.`);
      }
      const global = (u.options ?? []).some(
        (o) => o.section === 'X-Fleet' && o.name === 'Global' && o.value === 'true',
      );
      if (global) {
        throw new HttpError(
          409,
          what === 'status'
            ? `Unit ${name} is global: status is per machine`
            : `Unable to retrieve journal of global unit ${name}.`,
        );
      }
      if ((u.currentState ?? 'inactive') === 'inactive') {
        throw new HttpError(
          409,
          what === 'status'
            ? `Unit ${name} does not appear to be loaded.`
            : `Unit ${name} does not appear to be running.`,
        );
      }
      if (self.unreachable.has(name)) {
        throw new HttpError(
          502,
          `machine ${u.machineID} (10.214.0.99) is unreachable: connect ECONNREFUSED 10.214.0.99:54728`,
        );
      }
      const lines = Number(req.query.get('lines') ?? '10');
      if (what === 'status') {
        const output =
          `● ${name}\n     Loaded: loaded (/run/fleet/units/${name}; linked-runtime)\n` +
          `     Active: ${u.currentState === 'launched' ? 'active (running)' : 'inactive (dead)'}\n` +
          Array.from({ length: lines }, (_, i) => `log line ${i + 1} of ${name}\n`).join('');
        return {
          status: 200,
          body: { name, machineID: u.machineID, exitCode: self.exitCodes.get(name) ?? 0, output },
        };
      }
      const mode = req.query.get('output') ?? 'short';
      if (!JOURNAL_MODES.has(mode))
        throw new HttpError(400, `invalid output mode ${JSON.stringify(mode)}: field output`);
      self.journalRequests.push(req.query);
      const follow = req.query.get('follow') === 'true';
      async function* gen(): AsyncGenerator<string> {
        try {
          for (let i = 1; i <= lines; i++) yield `${mode} ${name} line ${i}\n`;
          for (let i = 1; follow; i++) {
            await new Promise((r) => setTimeout(r, 30));
            yield `${mode} ${name} follow ${i}\n`;
          }
        } finally {
          if (follow) self.closedStreams++;
        }
      }
      return { status: 200, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, stream: gen() };
    },
  };
  return self;
}
