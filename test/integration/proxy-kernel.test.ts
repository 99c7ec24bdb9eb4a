/**
 * The proxy's kernel data path (src/docker/proxy-kernel.ts) against the real kernel: real `nft`,
 * conntrack and TCP, in a private network namespace so that nothing touches the host's ruleset or
 * its network. proxy-kernel-probe.ts runs the scenario inside `unshare --net` and reports what it
 * saw; this file asserts on that report.
 *
 * The namespace has loopback and a veth pair with 10.99.0.1/24 and a static neighbour 10.99.0.2 that
 * never answers (the frames go to the peer, which has no address): an endpoint "on another machine"
 * that is dead.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

const PROBE = fileURLToPath(new URL('./proxy-kernel-probe.ts', import.meta.url));

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (unshare --net and nft)';
  for (const [cmd, args] of [
    ['unshare', ['--version']],
    ['nft', ['--version']],
    ['ip', ['-V']],
  ] as const) {
    if (spawnSync(cmd, [...args], { stdio: 'ignore' }).status !== 0) return `${cmd} is not installed`;
  }
  return undefined;
}

const why = unavailable();
if (why && process.env.TESTENV_REQUIRED === '1') {
  throw new Error(`proxy kernel path: ${why} (run test/env/up.sh; TESTENV_REQUIRED=1 forbids skipping)`);
}

const SETUP = [
  'ip link set lo up',
  'ip link add v0 type veth peer name v1',
  'ip addr add 10.99.0.1/24 dev v0',
  'ip link set v0 up',
  'ip link set v1 up',
  'ip neigh add 10.99.0.2 lladdr 02:00:00:00:00:02 dev v0 nud permanent',
  'exec "$0" --import tsx "$1"',
].join(' && ');

describe.skipIf(why !== undefined)(
  `proxy kernel path in a private network namespace${why ? ` (skipped: ${why})` : ''}`,
  () => {
    let r: Record<string, unknown>;
    beforeAll(() => {
      const out = execFileSync('unshare', ['--net', '--', 'sh', '-c', SETUP, process.execPath, PROBE], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      r = JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
      if (r.error) throw new Error(`probe failed: ${r.error as string}\nlog: ${JSON.stringify(r.log)}`);
    }, 70_000);

    it('uses the kernel path and installs only its own table', () => {
      expect(r.mode).toBe('kernel');
      expect(String(r.tablesAfterStart).trim()).toMatch(/^table ip flotilla_proxy_[0-9a-f]{10}$/);
      expect(
        (r.log as string[]).some((l) =>
          /listening on 127\.0\.0\.1:\d+ for service db \(kernel data path\)/.test(l),
        ),
      ).toBe(true);
    });

    it('balances new connections round-robin, none of them through user space', () => {
      expect(r.spread).toEqual({ A: 5, B: 5 });
      expect(r.userspaceAcceptedAfterSpread).toBe(0);
    });

    it('sends new connections elsewhere at once when an endpoint leaves, and drains the open ones', () => {
      expect(r.longLivedToA).toBe(true);
      expect(r.afterRemove).toEqual(['B', 'B', 'B', 'B', 'B', 'B']);
      expect(r.drainingAnswer).toBe('A');
    });

    it('resets a drained connection once the drain time is up', () => {
      expect(r.afterDrainAnswer).toBe('ECONNRESET');
      expect(r.afterDrainMs as number).toBeLessThan(1000);
    });

    it('routes a loopback listener to another machine (route_localnet with the martian guard)', () => {
      expect(r.routeLocalnetBefore).toBe('0');
      expect(r.routeLocalnetWithRemote).toBe('1');
      const rules = String(r.rulesWithRemote);
      expect(rules).toContain('dnat ip to numgen inc mod 1 map { 0 : 10.99.0.2 . 80 }');
      expect(rules).toMatch(/iifname != "lo" ip daddr 127\.0\.0\.0\/8 drop/);
      expect(rules).toMatch(/masquerade/);
    });

    it('fails a connect still waiting on a removed endpoint at its next SYN, instead of hanging', () => {
      expect(r.hangingBeforeRemove).toBe('pending');
      expect(['ECONNREFUSED', 'ECONNRESET']).toContain(r.hangingOutcome);
      // The first SYN retransmit comes 1 s after the SYN (300 ms of it spent before the removal).
      expect(r.hangingResolvedMs as number).toBeLessThan(2000);
      expect(r.afterRemoteRemoved).toBe('B');
    });

    it('leaves a service with no endpoint to the user-space listener, which refuses with a log line', () => {
      expect(r.noEndpoint).toBe('ECONNRESET');
      expect(r.refused).toBe(1);
      expect(r.log).toContain('warn proxy: no endpoint for service db: connection refused');
      expect(r.backAgain).toBe('A');
      expect(r.userspaceAcceptedTotal).toBe(1);
    });

    it('removes its table and puts route_localnet back on close', () => {
      expect(String(r.tablesAfterClose).trim()).toBe('');
      expect(r.routeLocalnetAfterClose).toBe('0');
    });
  },
);
