/**
 * Resources and config references against a real HTTP server on 127.0.0.1 and data: URLs:
 * base64 and percent-encoded data, gzip, sha512/sha256 verification (and mismatch), headers,
 * merge and replace (rules, later wins, cross-type nodes, depth bound), then the planner.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { isCode } from '../../../src/lib/errors.js';
import { MAX_DEPTH, mergeConfigs, renderConfig } from '../../../src/ignition/merge.js';
import { parseIgnition } from '../../../src/ignition/parse.js';
import { decodeDataUrl, fetchResource, resolveContents } from '../../../src/ignition/resources.js';
import type { IgnitionConfig } from '../../../src/ignition/types.js';
import { recorder } from '../datasource/log-recorder.js';

// Module loading and the ajv compile run on a shared, loaded machine: more than the 5 s default.
vi.setConfig({ testTimeout: 30_000 });

let server: Server;
let base: string;
const bodies = new Map<string, Buffer | string>();
const seenHeaders: Record<string, string | undefined>[] = [];

function handle(req: IncomingMessage, res: ServerResponse): void {
  const path = req.url ?? '/';
  seenHeaders.push({ path, token: req.headers['x-token'] as string | undefined });
  if (path.startsWith('/loop/')) {
    const n = Number(path.slice(6));
    res.writeHead(200).end(
      JSON.stringify({
        ignition: { version: '3.4.0', config: { merge: [{ source: `${base}/loop/${n + 1}` }] } },
      }),
    );
    return;
  }
  const body = bodies.get(path);
  if (body === undefined) res.writeHead(404).end('no');
  else res.writeHead(200).end(body);
}

beforeAll(async () => {
  server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const fast = { fetch: { initialBackoffMs: 1, maxBackoffMs: 2, attempts: 2 } };
const sha512 = (b: Buffer | string): string => `sha512-${createHash('sha512').update(b).digest('hex')}`;
const sha256 = (b: Buffer | string): string => `sha256-${createHash('sha256').update(b).digest('hex')}`;

describe('data: URLs', () => {
  it('percent-encoded, plain, base64 and UTF-8', () => {
    expect(decodeDataUrl('data:,hello%20world').toString()).toBe('hello world');
    expect(decodeDataUrl('data:text/plain;charset=utf-8,caf%C3%A9').toString()).toBe('café');
    expect(decodeDataUrl('data:,café').toString()).toBe('café');
    expect(decodeDataUrl('data:;base64,aGVsbG8K').toString()).toBe('hello\n');
    expect(decodeDataUrl('data:application/octet-stream;base64,AAEC')).toEqual(Buffer.from([0, 1, 2]));
    expect(decodeDataUrl('data:,')).toEqual(Buffer.alloc(0));
  });
  it('bad data URLs are errors naming the resource', () => {
    expect(() => decodeDataUrl('data:;base64,@@@', 'storage.files[0].contents /x')).toThrow(
      /storage\.files\[0\]\.contents \/x: invalid data url: bad base64 data/,
    );
    expect(() => decodeDataUrl('data:,50%zz')).toThrow(/bad percent-encoding/);
    expect(() => decodeDataUrl('data:nocomma')).toThrow(/no ","/);
  });
});

describe('fetchResource', () => {
  it('http with headers, gzip, and hashes of the decompressed contents', async () => {
    const text = 'line\n'.repeat(100);
    bodies.set('/gz', gzipSync(text));
    const got = await fetchResource(
      {
        source: `${base}/gz`,
        compression: 'gzip',
        verification: { hash: sha512(text) },
        httpHeaders: [{ name: 'X-Token', value: 's3cret' }],
      },
      'storage.files[0].contents /etc/x',
      fast,
    );
    expect(got.toString()).toBe(text);
    expect(seenHeaders.find((h) => h.path === '/gz')?.token).toBe('s3cret');
    const b64 = Buffer.from(gzipSync('zipped')).toString('base64');
    expect(
      (
        await fetchResource(
          { source: `data:;base64,${b64}`, compression: 'gzip', verification: { hash: sha256('zipped') } },
          'x',
        )
      ).toString(),
    ).toBe('zipped');
  });
  it('a hash mismatch is an error that names the resource but not the hashes', async () => {
    bodies.set('/plain', 'actual');
    const want = sha512('expected');
    let err: unknown;
    try {
      await fetchResource(
        { source: `${base}/plain`, verification: { hash: want } },
        'storage.files[2].contents /etc/y',
        fast,
      );
    } catch (e) {
      err = e;
    }
    expect(isCode(err, 'E_IGNITION')).toBe(true);
    expect((err as Error).message).toBe(
      'storage.files[2].contents /etc/y: sha512 hash mismatch: the contents are not the ones the config names',
    );
    expect((err as Error).message).not.toContain(want.slice(7, 30));
    await expect(
      fetchResource({ source: 'data:,a', verification: { hash: sha256('b') } }, 'w'),
    ).rejects.toThrow(/sha256 hash mismatch/);
  });
  it('bad gzip and unreachable URLs are errors naming the resource', async () => {
    await expect(fetchResource({ source: 'data:,notgzip', compression: 'gzip' }, 'f /z')).rejects.toThrow(
      /f \/z: invalid gzip data/,
    );
    await expect(
      fetchResource({ source: `${base}/missing` }, 'storage.files[1].contents /m', fast),
    ).rejects.toThrow(/storage\.files\[1\]\.contents \/m: .*404/);
  });
  it('resolveContents fetches every file contents and append fragment by location', async () => {
    bodies.set('/frag', 'B');
    const cfg = parseIgnition(
      JSON.stringify({
        ignition: { version: '3.4.0' },
        storage: {
          files: [
            {
              path: '/a',
              contents: { source: 'data:,A' },
              append: [{ source: `${base}/frag` }, { source: 'data:,C' }],
            },
            { path: '/empty' },
          ],
        },
      }),
    ).config;
    const m = await resolveContents(cfg, fast);
    expect([...m].map(([k, v]) => `${k}=${v.toString()}`)).toEqual([
      'storage.files[0].contents=A',
      'storage.files[0].append[0]=B',
      'storage.files[0].append[1]=C',
    ]);
  });
});

const cfg = (o: Partial<IgnitionConfig> & Record<string, unknown>): IgnitionConfig => ({
  ignition: { version: '3.4.0' },
  ...o,
});

describe('merge rules', () => {
  it('lists merge by key, later wins field by field, unset keeps the parent', () => {
    const parent = cfg({
      storage: {
        files: [
          { path: '/a', mode: 0o600, contents: { source: 'data:,p' } },
          { path: '/b', contents: { source: 'data:,b' } },
        ],
        directories: [{ path: '/d' }],
      },
      systemd: {
        units: [{ name: 'x.service', enabled: true, dropins: [{ name: '1.conf', contents: 'p' }] }],
      },
      passwd: { users: [{ name: 'core', sshAuthorizedKeys: ['k1'], groups: ['sudo'], shell: '/bin/sh' }] },
    });
    const child = cfg({
      storage: {
        files: [{ path: '/a', contents: { source: 'data:,c' } }],
        links: [{ path: '/d', target: '/b' }],
      },
      systemd: {
        units: [
          {
            name: 'x.service',
            mask: true,
            dropins: [
              { name: '1.conf', contents: 'c' },
              { name: '2.conf', contents: 'n' },
            ],
          },
          { name: 'y.service' },
        ],
      },
      passwd: { users: [{ name: 'core', sshAuthorizedKeys: ['k1', 'k2'], shell: null }, { name: 'ops' }] },
    });
    expect(mergeConfigs(parent, child)).toEqual({
      ignition: { version: '3.4.0' },
      storage: {
        files: [
          { path: '/a', mode: 0o600, contents: { source: 'data:,c' } },
          { path: '/b', contents: { source: 'data:,b' } },
        ],
        directories: [],
        links: [{ path: '/d', target: '/b' }],
      },
      systemd: {
        units: [
          {
            name: 'x.service',
            enabled: true,
            mask: true,
            dropins: [
              { name: '1.conf', contents: 'c' },
              { name: '2.conf', contents: 'n' },
            ],
          },
          { name: 'y.service' },
        ],
      },
      passwd: {
        users: [
          { name: 'core', sshAuthorizedKeys: ['k1', 'k2'], groups: ['sudo'], shell: '/bin/sh' },
          { name: 'ops' },
        ],
      },
    });
  });
});

describe('renderConfig: merge and replace', () => {
  it('merges http and data: configs in order (later wins), checking their hashes', async () => {
    const child1 = JSON.stringify({
      ignition: { version: '3.0.0' },
      storage: { files: [{ path: '/etc/role', contents: { source: 'data:,worker' } }] },
    });
    bodies.set('/child1.ign', child1);
    const child2 = JSON.stringify({
      ignition: { version: '2.3.0' },
      storage: { files: [{ filesystem: 'root', path: '/etc/role', contents: { source: 'data:,etcd' } }] },
    });
    const top = parseIgnition(
      JSON.stringify({
        ignition: {
          version: '3.4.0',
          config: {
            merge: [
              { source: `${base}/child1.ign`, verification: { hash: sha512(child1) } },
              {
                source: `data:;base64,${Buffer.from(child2).toString('base64')}`,
                verification: { hash: sha256(child2) },
              },
            ],
          },
        },
        passwd: { users: [{ name: 'core' }] },
      }),
    ).config;
    const log = recorder();
    const out = await renderConfig(top, { ...fast, log });
    expect(out.ignition.config).toBeUndefined();
    expect(out.passwd?.users).toEqual([{ name: 'core' }]);
    // 2.x child: translated (overwrite made explicit), merged over child1.
    expect(out.storage?.files).toEqual([
      { path: '/etc/role', overwrite: true, contents: { source: 'data:,etcd' } },
    ]);
    expect(log.text()).toContain('ignition.config.merge[1]');
  });
  it('replace uses the referenced config instead, rendered in turn', async () => {
    bodies.set(
      '/inner.ign',
      JSON.stringify({ ignition: { version: '3.4.0' }, systemd: { units: [{ name: 'inner.service' }] } }),
    );
    bodies.set(
      '/replacement.ign',
      JSON.stringify({
        ignition: { version: '3.3.0', config: { merge: [{ source: `${base}/inner.ign` }] } },
        systemd: { units: [{ name: 'r.service' }] },
      }),
    );
    const top = parseIgnition(
      JSON.stringify({
        ignition: { version: '3.4.0', config: { replace: { source: `${base}/replacement.ign` } } },
        systemd: { units: [{ name: 'gone.service' }] },
      }),
    ).config;
    const out = await renderConfig(top, fast);
    expect(out.systemd?.units?.map((u) => u.name)).toEqual(['r.service', 'inner.service']);
  });
  it('a hash mismatch of a referenced config fails the whole render', async () => {
    bodies.set('/tampered.ign', JSON.stringify({ ignition: { version: '3.4.0' } }));
    const top = parseIgnition(
      JSON.stringify({
        ignition: {
          version: '3.4.0',
          config: { merge: [{ source: `${base}/tampered.ign`, verification: { hash: sha512('other') } }] },
        },
      }),
    ).config;
    await expect(renderConfig(top, fast)).rejects.toThrow(
      /ignition\.config\.merge\[0\]: sha512 hash mismatch/,
    );
  });
  it('an invalid referenced config is an error naming it', async () => {
    bodies.set(
      '/bad.ign',
      JSON.stringify({ ignition: { version: '3.4.0' }, storage: { disks: [{ device: '/dev/sda' }] } }),
    );
    const top = parseIgnition(
      JSON.stringify({ ignition: { version: '3.4.0', config: { merge: [{ source: `${base}/bad.ign` }] } } }),
    ).config;
    await expect(renderConfig(top, fast)).rejects.toThrow(
      /ignition\.config\.merge\[0\] is invalid: \$\.storage\.disks: partitioning disks/,
    );
  });
  it('nesting is bounded', async () => {
    const top = parseIgnition(
      JSON.stringify({ ignition: { version: '3.4.0', config: { merge: [{ source: `${base}/loop/0` }] } } }),
    ).config;
    await expect(renderConfig(top, fast)).rejects.toThrow(
      new RegExp(`configs nest deeper than ${MAX_DEPTH} levels`),
    );
  });
});
