/**
 * `flotilla etcd add-member|remove-member|list-members` against a private, real etcd 3.4 cluster on
 * loopback ports of this test's own (started and stopped here, data in a temp dir): a member is
 * added and started with the printed settings, a dead member blocks add-member (named in the
 * error), and is removed with remove-member.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import { runCli } from '../unit/cli/harness.js';
import { describeEtcd } from '../support/testbed.js';

// Below the kernel's ephemeral range (ip_local_port_range 32768–60999): a port in it can be taken as
// the source port of any outgoing connection on the host, and etcd then fails to bind.
const BASE = Number(process.env.FLOTILLA_TEST_ETCD_MEMBERS_PORT ?? 28801);
const c1 = `http://127.0.0.1:${BASE}`;
const p1 = `http://127.0.0.1:${BASE + 1}`;
const c2 = `http://127.0.0.1:${BASE + 10}`;
const p2 = `http://127.0.0.1:${BASE + 11}`;
const c3 = `http://127.0.0.1:${BASE + 20}`;
const p3 = `http://127.0.0.1:${BASE + 21}`;
const dir = mkdtempSync(join(tmpdir(), 'flotilla-etcd-members-'));
const procs: ChildProcess[] = [];
/** The last 4 KiB of each member's stderr (etcd logs at error level), for a failure's message. */
const stderrTail = new Map<ChildProcess, string>();

function startEtcd(
  name: string,
  client: string,
  peer: string,
  cluster: string,
  state: 'new' | 'existing',
): ChildProcess {
  const p = spawn(
    'etcd',
    [
      '--name',
      name,
      '--data-dir',
      join(dir, name),
      '--listen-client-urls',
      client,
      '--advertise-client-urls',
      client,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      cluster,
      '--initial-cluster-state',
      state,
      '--initial-cluster-token',
      `flotilla-members-${process.pid}`,
      '--logger=zap',
      '--log-level=error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  stderrTail.set(p, '');
  p.stderr
    ?.setEncoding('utf8')
    .on('data', (d: string) => stderrTail.set(p, ((stderrTail.get(p) ?? '') + d).slice(-4096)));
  procs.push(p);
  return p;
}

async function healthy(url: string, proc: ChildProcess, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`etcd ${url} exited (${proc.exitCode ?? proc.signalCode}): ${stderrTail.get(proc)}`);
    }
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok && ((await r.json()) as { health?: string }).health === 'true') return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > end)
      throw new Error(`etcd ${url} not healthy after ${ms} ms; its stderr: ${stderrTail.get(proc)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const ctl = (...args: string[]) => runCli(['etcd', ...args, `--endpoints=${c1}`], {});

describeEtcd('flotilla etcd add-member / remove-member on a real etcd cluster', () => {
  // Killed after the test, before the suite's check for leftover child processes.
  afterEach(async () => {
    for (const p of procs.splice(0)) {
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGKILL');
        await once(p, 'exit');
      }
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('adds a member that then starts with the printed settings, refuses while one is dead, removes the dead one', async () => {
    // A 2-member cluster, grown to 3 with add-member; then the 3rd dies (2 of 3: quorum kept).
    const e1 = startEtcd('e1', c1, p1, `e1=${p1},e2=${p2}`, 'new');
    const e2 = startEtcd('e2', c2, p2, `e1=${p1},e2=${p2}`, 'new');
    await healthy(c1, e1);
    await healthy(c2, e2);
    const l1 = await ctl('list-members');
    expect(l1.code, l1.err).toBe(0);
    expect(l1.out).toMatch(new RegExp(`^[0-9a-f]+\\te1\\t${p1}\\t${c1}\\thealthy$`, 'm'));
    expect(l1.out.trimEnd().split('\n')).toHaveLength(2);

    // Bad input, named; nothing is added.
    expect((await ctl('add-member', 'bad name', p3)).err).toContain('NAME "bad name" is not a member name');
    expect((await ctl('add-member', 'e3', 'ftp://127.0.0.1:1')).err).toContain('must be http(s)://HOST:PORT');
    expect((await ctl('add-member', 'e3', 'nope')).err).toContain('PEER_URL "nope" is not a URL');
    expect((await ctl('add-member', 'e1', p3)).err).toContain('a member named e1 exists already');
    expect((await ctl('add-member', 'e9', p1)).err).toContain(`peer URL ${p1} is already member e1`);
    expect((await ctl('add-member', 'e3')).code).toBe(64);

    // etcd itself refuses a reconfiguration until its peers have been connected for 5 s.
    await new Promise((r) => setTimeout(r, 5500));
    const add = await ctl('add-member', 'e3', p3);
    expect(add.err).toBe('');
    expect(add.code).toBe(0);
    const lines = add.out.split('\n');
    expect(lines[0]).toMatch(/^Member [0-9a-f]+ added to cluster [0-9a-f]+$/);
    expect(lines.slice(1)).toEqual([
      '',
      'ETCD_NAME="e3"',
      `ETCD_INITIAL_CLUSTER="e1=${p1},e2=${p2},e3=${p3}"`,
      `ETCD_INITIAL_ADVERTISE_PEER_URLS="${p3}"`,
      'ETCD_INITIAL_CLUSTER_STATE="existing"',
      '',
    ]);
    // Not started yet: the cluster has an unstarted member, so another add is refused.
    const early = await ctl('add-member', 'e4', 'http://127.0.0.1:1');
    expect(early.code).toBe(1);
    expect(early.err).toMatch(/member \(unstarted\) \([0-9a-f]+\) is unhealthy: added but never started/);

    const e3 = startEtcd('e3', c3, p3, `e1=${p1},e2=${p2},e3=${p3}`, 'existing');
    await healthy(c3, e3);
    const l2 = await ctl('list-members');
    expect(l2.code, l2.err).toBe(0);
    expect(l2.out.trimEnd().split('\n')).toHaveLength(3);
    expect(l2.out).toMatch(new RegExp(`\\te3\\t${p3}\\t${c3}\\thealthy\\n`));

    // e3 dies: adding is refused and names it; removing it is allowed.
    e3.kill('SIGKILL');
    await once(e3, 'exit');
    const refused = await ctl('add-member', 'e4', 'http://127.0.0.1:1');
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(
      new RegExp(
        `^refusing to add e4: the cluster is not healthy: member e3 \\([0-9a-f]+, ${c3}\\) is unhealthy: ${c3}: .+\\(replace it first: remove-member it, then add its replacement\\)\\n$`,
      ),
    );
    expect((await ctl('list-members')).code).toBe(1);
    const rm = await ctl('remove-member', 'e3');
    expect(rm.code, rm.err).toBe(0);
    expect(rm.out).toMatch(
      new RegExp(`^Member [0-9a-f]+ removed from cluster [0-9a-f]+ \\(e3 \\([0-9a-f]+, ${c3}\\)\\)\\n$`),
    );
    const l3 = await ctl('list-members');
    expect(l3.code, l3.err).toBe(0);
    expect(l3.out.trimEnd().split('\n')).toHaveLength(2);
    expect((await ctl('remove-member', 'e3')).err).toContain('no member named or with ID e3');
  }, 90_000);
});
