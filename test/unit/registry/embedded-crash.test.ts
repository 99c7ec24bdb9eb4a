/**
 * kill -9: a child process (embedded-crash-child.ts) writes from 64 concurrent workers and prints
 * every acknowledged write; we SIGKILL it at a random point, or right after it reports a compaction
 * phase, reopen the store here and check that every acknowledged write is there, exactly, with
 * consistent revisions. The same directory goes through every round, so later rounds also recover
 * what earlier ones left (snapshots, torn tails, stale locks).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import type { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import { tempStores } from './embedded-support.js';

const CHILD = fileURLToPath(new URL('./embedded-crash-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

const t = tempStores();
let child: ChildProcess | undefined;
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
  }
  await t.cleanup();
});

interface Acked {
  puts: Map<string, { value: string; revision: number }>;
  deletes: Map<string, number>;
  counters: Map<number, { count: number; revision: number }>;
  leases: Map<string, { lease: string; revision: number }>;
  maxRevision: number;
}

type KillAt = { acks: number } | { phase: string };

/** Run one child until the kill point; returns what it printed (only complete lines count). */
async function runChild(
  dir: string,
  tag: string,
  killAt: KillAt,
  acked: Acked,
  whileRunning?: (pid: number) => Promise<void>,
): Promise<string> {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, tag], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = proc;
  let stderr = '';
  let buf = '';
  let acks = 0;
  let killedBy = 'timeout';
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  let busy: Promise<void> | undefined;
  const kill = (why: string): void => {
    if (busy) return void busy.then(() => kill(why));
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    killedBy = why;
    proc.kill('SIGKILL');
  };
  const timer = setTimeout(() => kill('timeout'), 60_000);
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const line of lines) {
      const [kind, a = '', b = '', c = ''] = line.split(' ');
      if (kind === 'C') {
        if ('phase' in killAt && killAt.phase === a) kill(`compaction ${a}`);
        continue;
      }
      acks++;
      const rev = Number(kind === 'A' || kind === 'N' || kind === 'L' ? c : b);
      acked.maxRevision = Math.max(acked.maxRevision, rev);
      if (kind === 'A') acked.puts.set(a, { value: b, revision: rev });
      else if (kind === 'D') acked.deletes.set(a, rev);
      else if (kind === 'N') acked.counters.set(Number(a), { count: Number(b), revision: rev });
      else if (kind === 'L') acked.leases.set(b, { lease: a, revision: rev });
      else throw new Error(`child printed ${JSON.stringify(line)}; stderr: ${stderr}`);
      if (acks === 1 && whileRunning) busy = whileRunning(proc.pid!).finally(() => (busy = undefined));
      if ('acks' in killAt && acks >= killAt.acks) kill(`after ${acks} acks`);
    }
  });
  await exited;
  clearTimeout(timer);
  expect(proc.signalCode, `child ended by itself (${proc.exitCode}): ${stderr}`).toBe('SIGKILL');
  expect(killedBy, `child never reached its kill point; stderr: ${stderr}`).not.toBe('timeout');
  return killedBy;
}

async function verify(s: EmbeddedKvStore, acked: Acked): Promise<void> {
  const revision = await s.revision();
  expect(revision).toBeGreaterThanOrEqual(acked.maxRevision);
  const all = new Map((await s.range('')).kvs.map((kv) => [kv.key, kv]));
  // A worker deletes its own earlier keys (every 3rd, oldest first), so a delete in flight at the
  // kill may have landed without being acknowledged: per worker and round, at most the oldest
  // deletable key not acknowledged as deleted may be missing.
  const missing = new Map<string, number[]>();
  for (const [key, { value, revision: rev }] of acked.puts) {
    if (acked.deletes.has(key)) continue;
    const kv = all.get(key);
    if (!kv) {
      const [, tag, w, i] = key.split('/');
      missing.set(`${tag}/${w}`, [...(missing.get(`${tag}/${w}`) ?? []), Number(i)]);
      continue;
    }
    expect(kv).toMatchObject({ value, createRevision: rev, modRevision: rev, version: 1, lease: '0' });
  }
  for (const [worker, [i, ...more]] of missing) {
    const oldest = [...acked.puts.keys()]
      .filter((k) => k.startsWith(`u/${worker}/`) && !acked.deletes.has(k))
      .map((k) => Number(k.split('/')[3]))
      .filter((n) => n % 3 === 0)
      .sort((a, b) => a - b)[0];
    expect(more, `acknowledged puts u/${worker}/{${[i, ...more].join(',')}} are missing`).toEqual([]);
    expect(i, `acknowledged put u/${worker}/${i} is missing`).toBe(oldest);
  }
  for (const [key, rev] of acked.deletes) {
    expect(all.has(key), `acknowledged delete of ${key} at ${rev} was lost`).toBe(false);
  }
  for (const [w, { count, revision: rev }] of acked.counters) {
    const kv = all.get(`ctr/${w}`)!;
    const n = Number(kv.value);
    // The last acknowledged increment is there; at most one more (in flight at the kill) may be too.
    expect(n === count || n === count + 1, `ctr/${w} = ${n}, acknowledged ${count}`).toBe(true);
    expect(kv.version).toBe(n);
    expect(kv.modRevision).toBeGreaterThanOrEqual(rev);
  }
  // What this check read is what the next child starts from: an increment that landed unacknowledged
  // in this round is the next round's base (else a worker's next acknowledged-or-in-flight increment
  // on top of it would look like two too many).
  for (const kv of all.values()) {
    const m = /^ctr\/(\d+)$/.exec(kv.key);
    if (m) acked.counters.set(Number(m[1]), { count: Number(kv.value), revision: kv.modRevision });
  }
  for (const [key, { lease, revision: rev }] of acked.leases) {
    expect(all.get(key), `leased ${key} at ${rev}`).toMatchObject({ value: lease, lease, modRevision: rev });
    // A fresh full TTL on open (minus the time this check took to get here).
    expect(await s.leaseTimeToLive(lease)).toBeGreaterThan(3500);
  }
  for (const kv of all.values()) {
    expect(kv.createRevision).toBeGreaterThan(0);
    expect(kv.createRevision).toBeLessThanOrEqual(kv.modRevision);
    expect(kv.modRevision).toBeLessThanOrEqual(revision);
  }
}

it(
  'never loses an acknowledged write when killed with SIGKILL, compacting or not',
  { timeout: 400_000 },
  async () => {
    const dir = await t.dir();
    const acked: Acked = {
      puts: new Map(),
      deletes: new Map(),
      counters: new Map(),
      leases: new Map(),
      maxRevision: 0,
    };
    const plan: KillAt[] = [
      { acks: 1 + Math.floor(Math.random() * 50) },
      { phase: 'start' },
      { acks: 200 + Math.floor(Math.random() * 2000) },
      { phase: 'rotated' },
      { acks: 1 + Math.floor(Math.random() * 4000) },
      { phase: 'snapshot' },
      { acks: 1 + Math.floor(Math.random() * 500) },
      { phase: 'done' },
      { acks: 1000 + Math.floor(Math.random() * 3000) },
    ];
    // While a child has the store open, opening it here fails naming the child.
    let lockError: { e: unknown; pid: number } | undefined;
    const tryOpen = async (pid: number) => {
      const e = await t.open(dir).then(
        () => new Error('opened a store another process holds'),
        (err: unknown) => err,
      );
      lockError = { e, pid };
    };
    for (const [round, killAt] of plan.entries()) {
      const why = await runChild(dir, `r${round}`, killAt, acked, round === 2 ? tryOpen : undefined);
      if (process.env.CRASH_DEBUG) console.log(round, why, acked.puts.size, acked.maxRevision);
      const s = await t.open(dir);
      try {
        await verify(s, acked);
      } catch (err) {
        if (process.env.CRASH_KEEP) {
          await s.close();
          const { cp } = await import('node:fs/promises');
          await cp(dir, process.env.CRASH_KEEP, { recursive: true });
          const { writeFile } = await import('node:fs/promises');
          await writeFile(`${process.env.CRASH_KEEP}.acked.json`, JSON.stringify([...acked.puts], null, 0));
        }
        if (err instanceof Error) err.message = `round ${round} (killed ${why}): ${err.message}`;
        throw err;
      }
      await s.close();
    }
    const { e, pid } = lockError as { e: Error & { code: string }; pid: number };
    expect(e.code).toBe('E_REGISTRY_UNAVAILABLE');
    expect(e.message).toContain(`${dir} is in use by process ${pid}`);
    expect(acked.puts.size).toBeGreaterThan(1000);
    expect(acked.deletes.size).toBeGreaterThan(0);
    expect(acked.leases.size).toBeGreaterThan(0);
  },
);
