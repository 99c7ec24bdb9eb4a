/**
 * The unit commands on the batch API (src/cli/batch.ts), against the real API server and embedded
 * registry: the same output as on fleet v1's one request per unit (an agent that answers the batch
 * routes with 404, as fleet and older agents do), a handful of requests instead of one or two per
 * unit, a bad unit that writes nothing, and sets over one request's limit.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpError, type ApiRequest } from '../../../src/api/http.js';
import { chunks } from '../../../src/cli/batch.js';
import { MACHINES, simulateCluster, startApi, type Api } from './harness.js';

interface Setup {
  api: Api;
  requests: string[];
  dir: string;
  stop?: () => Promise<void>;
}

const open: Setup[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) {
    await s.stop?.();
    await s.api.close();
    rmSync(s.dir, { recursive: true, force: true });
  }
});

/** An API that logs `METHOD path` of every request; `batch: false` answers the batch routes 404. */
async function setup(batch: boolean): Promise<Setup> {
  const requests: string[] = [];
  const api = await startApi(() => [], {
    before: [
      (req: ApiRequest) => {
        requests.push(`${req.method} ${req.path.replace(/^\/fleet\/v1\/units\/.+/, '/fleet/v1/units/NAME')}`);
        if (!batch && req.path.startsWith('/flotilla/v1/units/')) throw new HttpError(404, 'not found');
        return Promise.resolve(undefined);
      },
    ],
  });
  for (const m of MACHINES) await api.registry.registerMachine(m, api.lease);
  const s: Setup = { api, requests, dir: mkdtempSync(join(tmpdir(), 'flotilla-batch-')) };
  open.push(s);
  return s;
}

const unitFile = (i: number) =>
  `[Unit]\nDescription=Unit ${i}\n\n[Service]\nExecStart=/bin/sleep 1000\n` +
  (i % 2 === 0 ? '\n[X-Fleet]\nMachineMetadata=region=eu\n' : '');

function files(s: Setup, n: number, stem = 'u'): string[] {
  return Array.from({ length: n }, (_, i) => {
    const p = join(s.dir, `${stem}-${i + 1}.service`);
    writeFileSync(p, unitFile(i + 1));
    return p;
  });
}

const count = (s: Setup, what: string) => s.requests.filter((r) => r === what).length;

describe('unit commands on the batch API and on fleet v1', () => {
  /** submit, start, stop, unload, destroy of 30 units; each command's code, stdout and stderr. */
  async function script(s: Setup) {
    s.stop = simulateCluster(s.api, { intervalMs: 20 });
    const paths = files(s, 30);
    const names = paths.map((p) => p.slice(s.dir.length + 1));
    const out: unknown[] = [];
    const run = async (argv: string[]) => {
      s.requests.length = 0;
      const r = await s.api.run(argv);
      // Units reach their states in whatever order the simulated agents get to them: compare each
      // command's stdout lines sorted.
      out.push({ argv: argv[0], code: r.code, out: r.out.split('\n').sort(), err: r.err });
      return r;
    };
    await run(['submit', ...paths.slice(0, 10)]);
    await run(['start', ...paths]);
    const started = [...s.requests];
    await run(['stop', ...names, 'nope.service']);
    await run(['unload', ...names]);
    await run(['destroy', ...names, 'nope.service']);
    const destroyed = [...s.requests];
    return { out, started, destroyed };
  }

  it('give the same output, with a few requests for 30 units on the batch API', async () => {
    const viaBatch = await script(await setup(true));
    const viaV1 = await script(await setup(false));
    expect(viaBatch.out).toEqual(viaV1.out);
    // Sanity: the script did what it says (30 units started on the simulated machines).
    const start = viaBatch.out[1] as { code: number; out: string[] };
    expect(start.code).toBe(0);
    expect(start.out.filter((l) => /^Unit u-\d+\.service launched on /.test(l))).toHaveLength(30);

    // start: one get, one put of the 20 new units, one put of 30 desired states; then polls.
    const b = { requests: viaBatch.started } as Setup;
    expect(count(b, 'POST /flotilla/v1/units/put')).toBe(2);
    expect(count(b, 'PUT /fleet/v1/units/NAME')).toBe(0);
    expect(count(b, 'GET /fleet/v1/units/NAME')).toBe(0);
    const v = { requests: viaV1.started } as Setup;
    expect(count(v, 'PUT /fleet/v1/units/NAME')).toBe(20 + 30);
    // The 404 is remembered: one batch attempt per command, not one per request.
    expect(count(v, 'POST /flotilla/v1/units/put')).toBe(0);
    expect(count(v, 'POST /flotilla/v1/units/get')).toBe(1);

    expect(count({ requests: viaBatch.destroyed } as Setup, 'POST /flotilla/v1/units/destroy')).toBe(1);
    expect(count({ requests: viaBatch.destroyed } as Setup, 'DELETE /fleet/v1/units/NAME')).toBe(0);
    expect(count({ requests: viaV1.destroyed } as Setup, 'DELETE /fleet/v1/units/NAME')).toBe(31);
  });

  it('a unit the agent refuses fails the command and, on the batch API, nothing is written', async () => {
    for (const batch of [true, false]) {
      const s = await setup(batch);
      const good = files(s, 3, 'good');
      const bad = join(s.dir, 'bad.service');
      writeFileSync(bad, '[Service]\nExecStart=/bin/true\n[X-Fleet]\nGlobal=true\nMachineID=abc\n');
      const r = await s.api.run(['start', ...good, bad]);
      expect(r.code).toBe(1);
      expect(r.err).toContain('Error creating units: MachineID cannot be used with Global\n');
      const jobs = (await s.api.registry.listJobs()).map((j) => j.name).sort();
      if (batch) {
        expect(jobs).toEqual([]);
        expect(r.out).toBe('');
      } else {
        // fleet v1 writes unit by unit: the good ones exist, and the output says so.
        expect(jobs).toEqual(['good-1.service', 'good-2.service', 'good-3.service']);
        expect(r.out).toBe(
          'Unit good-1.service inactive\nUnit good-2.service inactive\nUnit good-3.service inactive\n',
        );
      }
    }
  });

  it('a set over one request limit goes in several requests (1,200 units: two puts)', async () => {
    const s = await setup(true);
    const paths = files(s, 1200);
    const r = await s.api.run(['submit', ...paths]);
    expect(r.code, r.err).toBe(0);
    expect(r.out.split('\n').filter(Boolean)).toHaveLength(1200);
    expect(count(s, 'POST /flotilla/v1/units/get')).toBe(2);
    expect(count(s, 'POST /flotilla/v1/units/put')).toBe(2);
    expect(await s.api.registry.listJobs()).toHaveLength(1200);
    s.requests.length = 0;
    const d = await s.api.run(['destroy', '--no-block', ...paths.map((p) => p.slice(s.dir.length + 1))]);
    expect(d.code, d.err).toBe(0);
    expect(count(s, 'POST /flotilla/v1/units/destroy')).toBe(2);
    expect(await s.api.registry.listJobs()).toHaveLength(0);
  }, 60_000);
});

describe('chunks', () => {
  it('splits at 1,000 items and at about 1 MiB, never leaving an empty request', () => {
    expect(chunks(Array.from({ length: 2500 }, (_, i) => i)).map((c) => c.length)).toEqual([1000, 1000, 500]);
    const big = Array.from({ length: 5 }, () => 'x'.repeat(400 * 1024));
    expect(chunks(big, (s) => s.length).map((c) => c.length)).toEqual([2, 2, 1]);
    // One item over the limit still goes (alone); the agent answers it with its own 413.
    expect(chunks(['y'.repeat(3 * 1024 * 1024)], (s) => s.length)).toHaveLength(1);
    expect(chunks([])).toEqual([]);
  });
});
