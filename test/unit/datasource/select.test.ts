/**
 * selectDatasource: sources polled at once with backoff, the first available wins, a timeout, and
 * real files appearing while it waits (FileDatasource and ConfigDriveDatasource).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigDriveDatasource } from '../../../src/datasource/config-drive.js';
import { FileDatasource } from '../../../src/datasource/index.js';
import { NO_DATASOURCE, selectDatasource } from '../../../src/datasource/select.js';
import type { Datasource, Metadata } from '../../../src/datasource/types.js';
import { recorder } from './log-recorder.js';

const work = mkdtempSync(join(tmpdir(), 'flotilla-select-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A source that records when it was polled (over a real file's existence). */
class Probe implements Datasource {
  readonly type = 'probe';
  readonly polls: number[] = [];
  private readonly t0 = Date.now();
  constructor(
    private readonly path: string,
    private readonly changes = true,
  ) {}
  async isAvailable(): Promise<boolean> {
    this.polls.push(Date.now() - this.t0);
    return new FileDatasource(this.path).isAvailable();
  }
  availabilityChanges(): boolean {
    return this.changes;
  }
  configRoot(): string {
    return this.path;
  }
  fetchMetadata(): Promise<Metadata> {
    throw new Error('Probe.fetchMetadata not implemented');
  }
  fetchUserdata(): Promise<Buffer> {
    throw new Error('Probe.fetchUserdata not implemented');
  }
}

describe('selectDatasource', () => {
  it('waits for a file that appears later, polling with doubling backoff', async () => {
    const path = join(work, 'late-user-data');
    const probe = new Probe(path);
    setTimeout(() => writeFileSync(path, '#cloud-config\n'), 700);
    const ds = await selectDatasource([probe], { timeoutMs: 10_000 });
    expect(ds).toBe(probe);
    // polls at ~0, 100, 300, 700, 1500 ms: gaps double from 100 ms
    const gaps = probe.polls.slice(1).map((t, i) => t - probe.polls[i]!);
    expect(gaps.length).toBeGreaterThanOrEqual(3);
    expect(gaps[0]).toBeGreaterThanOrEqual(95);
    expect(gaps[1]).toBeGreaterThanOrEqual(195);
    expect(gaps[2]).toBeGreaterThanOrEqual(395);
  });

  it('the first available wins among several; a config drive directory appearing counts', async () => {
    const drive = join(work, 'drive');
    const never = new Probe(join(work, 'never'));
    const cd = new ConfigDriveDatasource(drive);
    setTimeout(() => mkdirSync(join(drive, 'openstack', 'latest'), { recursive: true }), 250);
    const log = recorder();
    expect(await selectDatasource([never, cd], { timeoutMs: 10_000, log })).toBe(cd);
    expect(log.text()).toContain('datasource cloud-drive available');
  });

  it('caps the backoff', async () => {
    const probe = new Probe(join(work, 'never2'));
    await expect(selectDatasource([probe], { timeoutMs: 900, maxBackoffMs: 150 })).rejects.toThrow(
      NO_DATASOURCE,
    );
    const gaps = probe.polls.slice(1).map((t, i) => t - probe.polls[i]!);
    expect(Math.max(...gaps)).toBeLessThan(400);
    expect(probe.polls.length).toBeGreaterThanOrEqual(5);
  });

  it('times out with "No datasources available in time" and logs it', async () => {
    const log = recorder();
    const t0 = Date.now();
    await expect(selectDatasource([new Probe(join(work, 'x'))], { timeoutMs: 300, log })).rejects.toThrow(
      'No datasources available in time',
    );
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(log.text()).toContain('error No datasources available in time');
  });

  it('fails at once when no source can change, and with no sources', async () => {
    const t0 = Date.now();
    await expect(
      selectDatasource([new Probe(join(work, 'y'), false)], { timeoutMs: 60_000 }),
    ).rejects.toThrow(NO_DATASOURCE);
    await expect(selectDatasource([], { timeoutMs: 60_000 })).rejects.toThrow(NO_DATASOURCE);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('a source whose check throws is retried, and the abort signal stops selection', async () => {
    let n = 0;
    const flaky = new Probe(join(work, 'z'));
    flaky.isAvailable = () => (++n < 3 ? Promise.reject(new Error('boom')) : Promise.resolve(true));
    const log = recorder();
    expect(await selectDatasource([flaky], { log, initialBackoffMs: 10 })).toBe(flaky);
    expect(log.lines.filter((l) => l.includes('boom'))).toHaveLength(2);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    await expect(selectDatasource([new Probe(join(work, 'w'))], { signal: ac.signal })).rejects.toThrow(
      /aborted/,
    );
  });
});
