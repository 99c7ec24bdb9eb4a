/**
 * Remote status and journal through the agents' API on the real 3-machine cluster (agents as
 * systemd services, peer API over mutual TLS as configured by test/env/cluster.sh):
 *   - a unit pinned to m2; the request goes to m1's agent (TCP 54728, the host's test certificate);
 *     m1 forwards to m2's agent, which runs the real systemctl/journalctl;
 *   - `journal?follow=true`: each line the unit writes (it stamps CLOCK_REALTIME in ns; the machines
 *     share the host's kernel clock) arrives at the client; the latency is measured and printed as a
 *     benchmark line (target: under 1 s); after the client disconnects m2's journalctl is gone;
 *   - status via m1 and m3, non-follow journal, 404/409, and the cluster's /metrics;
 *   - PATCH /fleet/v1/machines on m3's metadata (sent to m1): m3's agent republishes its record, the
 *     engine places a unit that needs the new metadata on m3, and the events stream (from m2) shows
 *     each step.
 *
 * Run under the testbed lock with this checkout's build in the machines:
 *   npm run build && TESTENV_MACHINE_PROJECT=$PWD flock /tmp/flotilla-testbed.lock \
 *     npx vitest run --project integration test/integration/api-cluster.test.ts
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import {
  allMachines,
  ctl,
  inMachine,
  isActive,
  listMachines,
  putFile,
  sleepUnit,
  sleep,
  uniq,
  useCluster,
  waitFor,
  writeUnit,
} from '../support/cluster.js';
import { describeSystemd, envDir, machineIp } from '../support/testbed.js';
import { Stream, call, type Target } from '../unit/api/harness.js';

const PKI = `${process.env.TESTENV_STATE ?? '/var/lib/flotilla-testenv'}/cluster-pki`;
const API_PORT = Number(process.env.TESTENV_API_PORT ?? 54728);
const TICKER = '/tmp/flotilla-cluster-tests/ticker.sh';

describeSystemd('remote status and journal through the agents (real machines, mTLS peers)', () => {
  const cluster = useCluster();
  const [m1, m2, m3] = allMachines as [string, string, string];

  const agent = (m: string): Target => ({
    tls: {
      host: machineIp(m),
      port: API_PORT,
      ca: readFileSync(`${PKI}/ca.pem`),
      cert: readFileSync(`${PKI}/host.pem`),
      key: readFileSync(`${PKI}/host.key`),
    },
  });

  /** Start a ticker unit pinned to m2 (from m1); returns its name once it is active there. */
  async function startTicker(): Promise<string> {
    const name = `${uniq('ticker')}.service`;
    // One line every 200 ms, each stamped with the realtime clock in ns when written.
    const script = '#!/bin/sh\ni=0\nwhile :; do i=$((i+1)); echo "tick $i $(date +%s%N)"; sleep 0.2; done\n';
    for (const m of allMachines) await putFile(m, TICKER, script);
    const body = `[Unit]\nDescription=api remote journal test\n\n[Service]\nExecStart=/bin/sh ${TICKER}\n\n[X-Fleet]\nMachineMetadata=name=${m2}\n`;
    const path = await writeUnit(m1, name, body);
    cluster.created.push(name);
    const r = await ctl(m1, 'start', path);
    expect(r.code, r.stderr).toBe(0);
    await waitFor(`${name} active on ${m2}`, async () => (await isActive(m2, name)) === 'active', 20_000);
    // ... and its state reported, so every agent sees where it runs
    await waitFor(
      `${name} launched in the API`,
      async () => {
        const u = await call(agent(m1), 'GET', `/fleet/v1/units/${name}`);
        return (u.json as { currentState?: string } | undefined)?.currentState === 'launched';
      },
      20_000,
    );
    return name;
  }

  /** Has the ticker written at least `n` lines (its counter, read from systemctl status output)? */
  async function isTicking(name: string, n: number): Promise<boolean> {
    const st = await call(agent(m2), 'GET', `/flotilla/v1/units/${name}/status?lines=1`);
    const m = /tick (\d+) \d{19}/.exec((st.json as { output?: string } | undefined)?.output ?? '');
    return m !== null && Number(m[1]) >= n;
  }

  it('journal -f of a unit on m2, asked from m1, streams each new line within a second', async () => {
    const name = await startTicker();
    // The peer in the same run: journalctl -f inside m2 itself (journald's own delivery delay).
    const direct = spawn(
      'bash',
      [`${envDir}exec.sh`, m2, 'timeout', '40', 'journalctl', '-u', name, '-f', '-n', '0', '-o', 'cat'],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const directAt = new Map<string, number>();
    let partial = '';
    direct.stdout.on('data', (c: Buffer) => {
      const at = performance.now();
      const parts = (partial + c.toString('utf8')).split('\n');
      partial = parts.pop()!;
      for (const l of parts) directAt.set(l, at);
    });
    const directExit = new Promise((r) => direct.once('close', r));
    await waitFor(
      'journalctl -f inside m2 to show ticks',
      () => Promise.resolve([...directAt.keys()].some((l) => l.startsWith('tick'))),
      15_000,
      50,
    );
    const s = new Stream(agent(m1), `/flotilla/v1/units/${name}/journal?follow=true&lines=0&output=cat`);
    await s.ready;
    if (s.status !== 200) await new Promise((r) => setTimeout(r, 200)); // let the error body arrive
    expect([s.status, s.headers['content-type']], `response body: ${s.text}`).toEqual([
      200,
      'text/plain; charset=utf-8',
    ]);
    const latencies: number[] = [];
    const added: number[] = [];
    const apiAt: [string, number][] = [];
    let from = 0;
    for (let k = 0; k < 20; k++) {
      const got = await s.waitFor((l) => /^tick \d+ \d{19}$/.test(l), 5000, from);
      from = got.index + 1;
      const writtenMs = Number(BigInt(got.line.split(' ')[2]!) / 1000n) / 1000;
      latencies.push(performance.timeOrigin + got.at - writtenMs);
      apiAt.push([got.line, got.at]);
    }
    s.close();
    await sleep(1000); // the direct reader's copies of the last lines
    for (const [l, at] of apiAt) {
      const d = directAt.get(l);
      if (d !== undefined) added.push(at - d);
    }
    await inMachine(m2, 'pkill', '-f', '--', `journalctl -u ${name} `);
    await directExit;
    const pct = (xs: number[], q: number) =>
      [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;
    const directLat = [...directAt].flatMap(([l, at]) =>
      /^tick \d+ \d{19}$/.test(l)
        ? [performance.timeOrigin + at - Number(BigInt(l.split(' ')[2]!) / 1000n) / 1000]
        : [],
    );
    console.log(
      `[bench] remote journal -f latency, unit write -> client (unit on ${m2} -> agent ${m2} -> agent ${m1} -> client, mTLS): ` +
        `p50 ${pct(latencies, 0.5).toFixed(1)} ms, max ${pct(latencies, 1).toFixed(1)} ms, n=${latencies.length} (target < 1000 ms)\n` +
        `[bench] peer: journalctl -f inside ${m2}: p50 ${directLat.length ? pct(directLat, 0.5).toFixed(1) : '-'} ms (journald delays change notifications up to 250 ms); ` +
        `added by the API path: p50 ${added.length ? pct(added, 0.5).toFixed(1) : '-'} ms, max ${added.length ? pct(added, 1).toFixed(1) : '-'} ms (n=${added.length})`,
    );
    expect(latencies.every((l) => Number.isFinite(l) && l > -50)).toBe(true); // clocks agree
    expect(pct(latencies, 0.5)).toBeLessThan(1000);
    // The client left: m2's journalctl for this unit is gone (m1 dropped its peer connection).
    await waitFor(
      `journalctl for ${name} gone in ${m2}`,
      async () => (await inMachine(m2, 'pgrep', '-f', '--', `--unit=${name}`)).code === 1,
      5000,
    );
  });

  it('status and journal of a unit on m2 through m1 and m3, and on m2 itself', async () => {
    const name = await startTicker();
    const id2 = cluster.map().id(m2);
    for (const via of [m1, m3, m2]) {
      const st = await call(agent(via), 'GET', `/flotilla/v1/units/${name}/status?lines=3`);
      expect(st.status, `status via ${via}: ${st.text}`).toBe(200);
      const body = st.json as { name: string; machineID: string; exitCode: number; output: string };
      expect(body).toMatchObject({ name, machineID: id2, exitCode: 0 });
      expect(body.output).toContain(name);
      expect(body.output).toMatch(/Active: active \(running\)/);
      expect(body.output).toMatch(/tick \d+ \d{19}/); // the last log lines systemctl shows
    }
    // The last 5 entries: once the unit has written that many, all of them are its ticks.
    await waitFor('5 ticks in the journal', async () => (await isTicking(name, 5)) || undefined, 10_000);
    const j = await call(agent(m3), 'GET', `/flotilla/v1/units/${name}/journal?lines=5&output=cat`);
    expect(j.status).toBe(200);
    const lines = j.text.trim().split('\n');
    expect(lines).toHaveLength(5);
    for (const l of lines) expect(l).toMatch(/^tick \d+ \d{19}$/);
    // The CLI inside m1 (unix socket -> m1's agent -> m2's agent).
    const cliStatus = await ctl(m1, 'status', name);
    expect(cliStatus.code, cliStatus.stderr).toBe(0);
    expect(cliStatus.stdout).toMatch(/Active: active \(running\)/);
    const cliJournal = await ctl(m1, 'journal', '--lines=2', '--output=cat', name);
    expect(cliJournal.code, cliJournal.stderr).toBe(0);
    expect(cliJournal.stdout.trim().split('\n')).toHaveLength(2);
    const json = await call(agent(m1), 'GET', `/flotilla/v1/units/${name}/journal?lines=1&output=json`);
    expect((JSON.parse(json.text.trim()) as { _SYSTEMD_UNIT: string })._SYSTEMD_UNIT).toBe(name);
  });

  it('404 and 409 come from the receiving agent; /metrics shows the cluster', async () => {
    const missing = await call(agent(m1), 'GET', '/flotilla/v1/units/no-such-unit.service/status');
    expect([missing.status, missing.json]).toEqual([
      404,
      { error: { code: 404, message: 'Unit no-such-unit.service does not exist.' } },
    ]);
    const name = `${uniq('submitted')}.service`;
    const path = await writeUnit(m1, name, '[Service]\nExecStart=/bin/sleep infinity\n');
    cluster.created.push(name);
    expect((await ctl(m1, 'submit', path)).code).toBe(0);
    const j = await call(agent(m3), 'GET', `/flotilla/v1/units/${name}/journal`);
    expect([j.status, (j.json as { error: { message: string } }).error.message]).toEqual([
      409,
      `Unit ${name} does not appear to be running.`,
    ]);
    const m = await call(agent(m1), 'GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.text).toMatch(/^flotilla_lease_held 1$/m);
    expect(m.text).toMatch(/^flotilla_machines 3$/m);
    expect(m.text).toMatch(/^flotilla_registry_request_duration_seconds_count\{op="txn",result="ok"\} \d+/m);
  });

  it("metadata PATCHed through m1 reaches m3's record, the scheduler and the events stream", async () => {
    const id3 = cluster.map().id(m3);
    const ev = new Stream(agent(m2), '/flotilla/v1/events');
    await ev.waitFor((l) => l.includes('"kind":"hello"'));
    const role = uniq('role');
    const patch = (op: string, value?: string) =>
      call(agent(m1), 'PATCH', '/fleet/v1/machines', [
        { op, path: `/${id3}/metadata/role`, ...(value ? { value: { value } } : {}) },
      ]);
    expect((await patch('add', role)).status).toBe(204);
    await ev.waitFor((l) => l.includes('"kind":"metadata"') && l.includes(role));
    // m3's agent saw its key change and re-published its machine record with the merged metadata
    await ev.waitFor((l) => l.includes('"kind":"machine"') && l.includes(id3) && l.includes(role), 10_000);
    expect((await listMachines(m2)).find((r) => r.id === id3)?.metadata).toMatchObject({ name: m3, role });
    const name = `${uniq('meta')}.service`;
    const path = await writeUnit(m1, name, sleepUnit([`MachineMetadata=role=${role}`]));
    cluster.created.push(name);
    const r = await ctl(m1, 'start', path);
    expect(r.code, r.stderr).toBe(0);
    await ev.waitFor((l) => l.includes('"kind":"schedule"') && l.includes(name) && l.includes(id3), 15_000);
    await waitFor(`${name} active on ${m3}`, async () => (await isActive(m3, name)) === 'active', 20_000);
    // remove masks the key again; the record follows
    expect((await patch('remove')).status).toBe(204);
    await waitFor(
      `role gone from ${m3}`,
      async () => (await listMachines(m2)).find((x) => x.id === id3)?.metadata.role === undefined,
      10_000,
    );
    ev.close();
  });
});
