/**
 * Journal stream backpressure: a client that stops reading a `journal?follow=true` stream must pause
 * journalctl, not make the agent queue its output (a stalled client once queued ~1.7 GB in 2 s). The
 * stand-in journalctl (fake-flood.mjs) writes as fast as it can and reports how much it wrote.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha1 } from '../../../src/registry/registry.js';
import { UnitFile } from '../../../src/unit/index.js';
import { alive, startAgent, until, type Agent } from './harness.js';

const FLOOD = fileURLToPath(new URL('./fake-flood.mjs', import.meta.url));
const ME = 'a'.repeat(32);

let a: Agent;
let countFile: string;
beforeAll(async () => {
  a = await startAgent({ logs: { journalctl: [process.execPath, FLOOD] } });
  countFile = join(a.dir, 'flood-count');
  process.env.FLOOD_COUNT = countFile;
  const lease = (await a.store.grantLease(600)).id;
  const text = UnitFile.fromOptions([
    { section: 'Service', name: 'ExecStart', value: '/bin/true' },
  ]).serialize();
  await a.registry.createUnit('flood.service', text, 'launched');
  const guard = await a.registry.acquireLeadership('engine-test', lease);
  await a.registry.writeSchedule(guard!, [{ name: 'flood.service', machineID: ME }]);
  await a.registry.reportUnitState(
    {
      name: 'flood.service',
      machineID: ME,
      hash: sha1(text),
      loadState: 'loaded',
      activeState: 'active',
      subState: 'running',
      jobState: 'launched',
    },
    lease,
  );
});
afterAll(async () => {
  delete process.env.FLOOD_COUNT;
  await a?.close();
});

const written = () => {
  try {
    return Number(readFileSync(countFile, 'utf8'));
  } catch {
    return 0;
  }
};

describe('journal stream to a stalled client', () => {
  it('pauses journalctl: what it could write stays bounded, and the stream resumes when read', async () => {
    const sock = connect(a.socketPath);
    await new Promise<void>((r) => sock.once('connect', r));
    let received = 0;
    let pid = 0;
    sock.on('data', (d: Buffer) => (received += d.length));
    sock.write('GET /flotilla/v1/units/flood.service/journal?follow=true HTTP/1.1\r\nHost: x\r\n\r\n');
    await until('journal bytes arrive', () => received > 0, 5000);
    sock.pause();
    // Let the flood run against the stalled client until it stops growing: it must stall, within
    // 10 s even on a starved host (it stalls after ~2 s on a quiet one; unbounded, it grew ~1 GB/s).
    await new Promise((r) => setTimeout(r, 2000));
    let stalledAt = written();
    let later = stalledAt;
    for (const t0 = performance.now(); performance.now() - t0 < 10_000;) {
      await new Promise((r) => setTimeout(r, 500));
      later = written();
      if (later - stalledAt < 64 * 1024) break;
      stalledAt = later;
    }
    // Unix socket buffers + the pipe + a few 64 KiB stream buffers: a few MB at most, and flat.
    expect(stalledAt).toBeGreaterThan(0);
    expect(stalledAt).toBeLessThan(16 * 1024 * 1024);
    expect(later - stalledAt).toBeLessThan(1024 * 1024);
    // Reading again resumes journalctl.
    const before = received;
    sock.resume();
    await until('the stream resumes', () => received > before + 4 * 1024 * 1024, 10_000);
    // The stand-in writes its count now and then, not per write: wait for it to move.
    await until('journalctl writes again', () => written() > later, 5000);
    // Find the stand-in's PID through /proc (its argv holds FLOOD) to see it die on disconnect.
    pid = findPid();
    sock.destroy();
    if (pid) await until(`journalctl stand-in ${pid} killed`, () => !alive(pid), 4000);
  }, 40_000);
});

function findPid(): number {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(FLOOD)) return Number(d);
    } catch {
      /* gone */
    }
  }
  return 0;
}
