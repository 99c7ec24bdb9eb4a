/**
 * What the real-cluster benchmarks (cluster-real.ts, agent-idle.ts) watch on the test machines:
 * the registry's unit states, followed from the host (`StateWatch`), and each agent process's RSS and
 * CPU read from /proc inside its machine (`sampleAgents`).
 */
import { EtcdKvStore } from '../../src/registry/etcd.js';
import { allMachines, inMachineOk, monoNowUs, sleep } from '../../test/support/cluster.js';
import { machineIp } from '../../test/support/testbed.js';

export const endpointsOf = (ms: readonly string[]): string[] => ms.map((m) => `http://${machineIp(m)}:2379`);

/**
 * Unit states as the registry shows them, followed from the host with one watch on `state/`: for
 * each key `state/<unit>/<machineID>`, its activeState and when (host monotonic µs) it last became
 * active.
 */
export class StateWatch {
  readonly states = new Map<
    string,
    { unit: string; machineID: string; activeState: string; activeSinceUs: number }
  >();
  private waiters = new Set<() => void>();
  private constructor(private readonly store: EtcdKvStore) {}

  static async open(endpoints: string[]): Promise<StateWatch> {
    const store = new EtcdKvStore({ endpoints, prefix: '/flotilla/', requestTimeoutMs: 5000 });
    const w = new StateWatch(store);
    const r = await store.range('state/');
    for (const kv of r.kvs) w.apply(kv.key, kv.value);
    const watch = store.watch('state/', { fromRevision: r.revision + 1 });
    void (async () => {
      try {
        for await (const batch of watch) {
          for (const ev of batch.events) {
            if (ev.type === 'put') w.apply(ev.kv.key, ev.kv.value);
            else w.states.delete(ev.kv.key);
          }
          for (const f of [...w.waiters]) f();
        }
      } catch (err) {
        console.error(`[cluster-watch] registry watch ended: ${(err as Error).message}`);
      }
    })();
    return w;
  }

  private apply(key: string, value: string): void {
    const [, unit = '', machineID = ''] = key.split('/');
    let activeState = '';
    try {
      const v = (JSON.parse(value) as { activeState?: unknown }).activeState;
      activeState = typeof v === 'string' ? v : '';
    } catch {
      return;
    }
    const prev = this.states.get(key);
    const activeSinceUs =
      activeState === 'active' ? (prev?.activeState === 'active' ? prev.activeSinceUs : monoNowUs()) : 0;
    this.states.set(key, { unit, machineID, activeState, activeSinceUs });
  }

  /** Resolve when `pred()` holds (checked after every watch batch), or reject after timeoutMs. */
  until(what: string, pred: () => boolean, timeoutMs: number): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!pred()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  get kv(): EtcdKvStore {
    return this.store;
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}

export async function withWatch<T>(endpoints: string[], f: (w: StateWatch) => Promise<T>): Promise<T> {
  const w = await StateWatch.open(endpoints);
  try {
    return await f(w);
  } finally {
    await w.close();
  }
}

export interface AgentSamples {
  m: string;
  pid: number;
  leader: boolean;
  /** VmRSS at the start and after each interval, MiB. */
  rssMiB: number[];
  /** CPU (utime + stime) per interval, % of one core. */
  cpuPct: number[];
  /** CPU over the whole window, % of one core. */
  cpuTotal: number;
  seconds: number;
}

/** RSS and CPU of flotilla.service's main process in each machine, every `everyS` for `seconds`. */
export async function sampleAgents(
  seconds: number,
  watch: StateWatch,
  machines: readonly string[] = allMachines,
  everyS = 5,
): Promise<AgentSamples[]> {
  const leaderKv = await watch.kv.get('engine/leader');
  const leaderId = leaderKv ? (JSON.parse(leaderKv.value) as { machineID?: string }).machineID : undefined;
  const tck = Number((await inMachineOk(machines[0]!, 'getconf', 'CLK_TCK')).trim()) || 100;
  const read = async (m: string, pid: number) => {
    const out = await inMachineOk(m, 'cat', `/proc/${pid}/stat`, `/proc/${pid}/status`);
    const statLine = out.slice(0, out.indexOf('\n'));
    const stat = statLine.slice(statLine.lastIndexOf(')') + 2).split(' ');
    // fields after "(comm) ": state(3) ... utime(14) stime(15) → indexes 11, 12 here
    const ticks = Number(stat[11]) + Number(stat[12]);
    const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(out)?.[1] ?? NaN);
    return { ticks, rssMiB: rssKb / 1024, at: performance.now() };
  };
  const agents = await Promise.all(
    machines.map(async (m) => {
      const pid = Number(
        (await inMachineOk(m, 'systemctl', 'show', '-p', 'MainPID', '--value', 'flotilla')).trim(),
      );
      const id = (await inMachineOk(m, 'cat', '/etc/machine-id')).trim();
      return { m, pid, leader: id === leaderId, samples: [await read(m, pid)] };
    }),
  );
  const steps = Math.max(1, Math.round(seconds / everyS));
  for (let i = 0; i < steps; i++) {
    await sleep((seconds * 1000) / steps);
    for (const a of agents) a.samples.push(await read(a.m, a.pid));
  }
  return agents.map((a) => {
    const cpuPct: number[] = [];
    for (let i = 1; i < a.samples.length; i++) {
      const dt = (a.samples[i]!.at - a.samples[i - 1]!.at) / 1000;
      cpuPct.push(((a.samples[i]!.ticks - a.samples[i - 1]!.ticks) / tck / dt) * 100);
    }
    const first = a.samples[0]!;
    const last = a.samples[a.samples.length - 1]!;
    const secondsTotal = (last.at - first.at) / 1000;
    return {
      m: a.m,
      pid: a.pid,
      leader: a.leader,
      rssMiB: a.samples.map((s) => s.rssMiB),
      cpuPct,
      cpuTotal: ((last.ticks - first.ticks) / tck / secondsTotal) * 100,
      seconds: secondsTotal,
    };
  });
}
