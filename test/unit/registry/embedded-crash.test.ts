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
async function runChild(dir: string, tag: string, killAt: KillAt, acked: Acked): Promise<string> {
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
  const kill = (why: string): void => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    killedBy = why;
    proc.kill('SIGKILL');
  };
  const timer = setTimeout(() => kill('timeout'), 20_000);
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
  for (const [key, { value, revision: rev }] of acked.puts) {
    if (acked.deletes.has(key)) continue;
    const kv = all.get(key);
    expect(kv, `acknowledged put of ${key} at ${rev} is missing`).toBeDefined();
    expect(kv).toMatchObject({ value, createRevision: rev, modRevision: rev, version: 1, lease: '0' });
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
  for (const [key, { lease, revision: rev }] of acked.leases) {
    expect(all.get(key), `leased ${key} at ${rev}`).toMatchObject({ value: lease, lease, modRevision: rev });
    expect(await s.leaseTimeToLive(lease)).toBe(3600);
  }
  for (const kv of all.values()) {
    expect(kv.createRevision).toBeGreaterThan(0);
    expect(kv.createRevision).toBeLessThanOrEqual(kv.modRevision);
    expect(kv.modRevision).toBeLessThanOrEqual(revision);
  }
}

it(
  'never loses an acknowledged write when killed with SIGKILL, compacting or not',
  { timeout: 180_000 },
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
    for (const [round, killAt] of plan.entries()) {
      const why = await runChild(dir, `r${round}`, killAt, acked);
      if (process.env.CRASH_DEBUG) console.log(round, why, acked.puts.size, acked.maxRevision);
      const s = await t.open(dir);
      await verify(s, acked);
      await s.close();
    }
    expect(acked.puts.size).toBeGreaterThan(1000);
    expect(acked.deletes.size).toBeGreaterThan(0);
    expect(acked.leases.size).toBeGreaterThan(0);
  },
);
