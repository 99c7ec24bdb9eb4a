/**
 * The proxy's kernel data path (src/proxy/kernel.ts) against the real kernel: real `nft`,
 * conntrack and TCP, in a private network namespace so that nothing touches the host's ruleset or
 * its network. proxy-kernel-probe.ts runs the scenario inside `unshare --net` and reports what it
 * saw; this file asserts on that report.
 *
 * The namespace has loopback and a veth pair 10.99.0.1/24 to a peer namespace, 10.99.0.2, where a
 * small server runs: an endpoint "on another machine". 10.99.0.3 is a static neighbour nobody answers
 * for: a dead one.
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

const PEER_SERVER =
  "require('net').createServer((s) => { s.on('error', () => {}); s.on('data', () => s.write('R\\n')); }).listen(7000, '10.99.0.2'); setTimeout(() => process.exit(0), 120000);";

const SETUP = [
  'set -e',
  'ip link set lo up',
  'ip link add v0 type veth peer name v1',
  // the peer namespace: a process that holds it (killed at the end; gone after 120 s at most)
  'unshare --net sleep 120 >/dev/null 2>&1 & PEER=$!',
  'while [ "$(readlink /proc/$PEER/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do sleep 0.02; done',
  'ip link set v1 netns $PEER',
  'ip addr add 10.99.0.1/24 dev v0',
  'ip link set v0 up',
  'nsenter --net --target $PEER sh -c "ip link set lo up && ip addr add 10.99.0.2/24 dev v1 && ip link set v1 up"',
  // 10.99.0.3: a neighbour nobody answers for
  'ip neigh add 10.99.0.3 lladdr 02:00:00:00:00:03 dev v0 nud permanent',
  // the "other machine's" server: answers every line with R
  `nsenter --net --target $PEER "$0" -e "${PEER_SERVER}" >/dev/null 2>&1 & SRV=$!`,
  'for i in $(seq 100); do nsenter --net --target $PEER bash -c "exec 3<>/dev/tcp/10.99.0.2/7000" 2>/dev/null && break; sleep 0.05; done || true',
  'set +e',
  '"$0" --import tsx "$1"; rc=$?',
  'kill $SRV $PEER 2>/dev/null',
  'exit $rc',
].join('\n');

describe.skipIf(why !== undefined)(
  `proxy kernel path in a private network namespace${why ? ` (skipped: ${why})` : ''}`,
  () => {
    let r: Record<string, unknown>;
    beforeAll(() => {
      const out = execFileSync('unshare', ['--net', '--', 'bash', '-c', SETUP, process.execPath, PROBE], {
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

    it('routes a loopback listener to another machine (route_localnet with the martian guard, masquerade)', () => {
      expect(r.routeLocalnetBefore).toBe('0');
      expect(r.routeLocalnetWithRemote).toBe('1');
      expect(r.remoteAnswers).toEqual(['R', 'R']);
      const rules = String(r.rulesWithRemote);
      expect(rules).toMatch(
        /counter packets [1-9]\d* bytes \d+ dnat ip to numgen inc mod 1 map \{ 0 : 10\.99\.0\.2 \. 7000 \}/,
      );
      expect(rules).toMatch(/iifname != "lo" ip daddr 127\.0\.0\.0\/8 drop/);
      expect(rules).toMatch(
        /ct original ip daddr 127\.0\.0\.1 ct original proto-dst \d+ oifname != "lo" masquerade/,
      );
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
