/**
 * `flotilla registry backup|restore` on real data directories: round trip (keys, revisions, leases),
 * refusal of damaged, truncated and foreign files (naming the file and the bad part) with nothing
 * written, and refusal to restore under a live store held by another process unless --force.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { isCode } from '../../../src/lib/errors.js';
import { readBackup, restoreDataDir } from '../../../src/registry/embedded/backup.js';
import { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import { tempStores } from './embedded-support.js';

const t = tempStores();
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill('SIGKILL');
    if (c.exitCode === null && c.signalCode === null) await once(c, 'exit');
  }
  await t.cleanup();
});

async function cli(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => (out += s), err: (s) => (err += s) }, {});
  return { code, out, err };
}

/** A data_dir whose registry holds a few keys, one on a lease, and a deletion in its history. */
async function seeded(): Promise<{ dataDir: string; want: Awaited<ReturnType<typeof dump>> }> {
  const dataDir = await t.dir();
  const s = await EmbeddedKvStore.open({ dataDir: join(dataDir, 'registry') });
  await s.put('/flotilla/job/a.service/object', '{"name":"a.service"}');
  await s.put('/flotilla/job/b.service/object', '{"name":"b.service"}');
  await s.put('/flotilla/job/a.service/target-state', 'launched');
  await s.put('/flotilla/job/a.service/target-state', 'loaded');
  await s.delete('/flotilla/job/b.service/object');
  const lease = await s.grantLease(3600);
  await s.put('/flotilla/machines/m1/object', '{"id":"m1"}', { lease: lease.id });
  const want = await dump(s);
  await s.close();
  return { dataDir, want };
}

async function dump(s: EmbeddedKvStore) {
  const kvs = (await s.range('')).kvs;
  const leases = await Promise.all(
    [...new Set(kvs.map((k) => k.lease).filter((l) => l !== '0'))].map(async (l) => [
      l,
      await s.leaseTimeToLive(l),
    ]),
  );
  return { revision: await s.revision(), kvs, leases };
}

async function reopened(dataDir: string) {
  const s = await t.open(join(dataDir, 'registry'));
  return dump(s);
}

describe('registry backup and restore (embedded)', () => {
  it('round-trips keys with their revisions and versions, and leases', async () => {
    const { dataDir, want } = await seeded();
    const file = join(await t.dir(), 'reg.bak');
    const b = await cli('registry', 'backup', file, `--data-dir=${dataDir}`);
    expect(b.err).toBe('');
    expect(b.code).toBe(0);
    expect(b.out).toBe(
      `Backed up registry ${dataDir}/registry at revision ${want.revision} (3 keys, 1 leases) to ${file}\n`,
    );
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    // Restore into another machine's empty data_dir, and over a registry that has moved on.
    const other = await t.dir();
    const r1 = await cli('registry', 'restore', file, `--data-dir=${other}`);
    expect(r1.code, r1.err).toBe(0);
    expect(r1.out).toContain(
      `Restored registry ${other}/registry to revision ${want.revision} (3 keys, 1 leases)`,
    );
    const o = await EmbeddedKvStore.open({ dataDir: join(other, 'registry') });
    const got = await dump(o);
    await o.close();
    expect(got.revision).toBe(want.revision);
    expect(got.kvs).toEqual(want.kvs);
    expect(got.leases.map(([id]) => id)).toEqual(want.leases.map(([id]) => id));

    const s = await EmbeddedKvStore.open({ dataDir: join(dataDir, 'registry') });
    await s.put('/flotilla/job/c.service/object', 'later');
    await s.close();
    const r2 = await cli('registry', 'restore', file, `--data-dir=${dataDir}`);
    expect(r2.code, r2.err).toBe(0);
    const kept = /The replaced registry is kept in (\S+)\n/.exec(r2.out)?.[1];
    expect(kept).toMatch(new RegExp(`^${dataDir}/registry\\.pre-restore-`));
    // The store goes on from the restored revision.
    const s2 = await t.open(join(dataDir, 'registry'));
    const back = await dump(s2);
    expect(back.kvs).toEqual(want.kvs);
    expect(back.revision).toBe(want.revision);
    expect((await s2.put('/x', 'y')).revision).toBe(want.revision + 1);
    // The replaced one is intact and still opens (with the later key).
    const old = await t.open(kept!);
    expect((await old.get('/flotilla/job/c.service/object'))?.value).toBe('later');
  });

  it('refuses damaged, truncated and foreign files with the file named, and writes nothing', async () => {
    const { dataDir, want } = await seeded();
    const dir = await t.dir();
    const file = join(dir, 'reg.bak');
    expect((await cli('registry', 'backup', file, `--data-dir=${dataDir}`)).code).toBe(0);
    const good = await readFile(file);

    const cases: [string, Buffer, RegExp][] = [
      [
        'flipped',
        Buffer.from(good.map((b, i) => (i === good.length - 5 ? b ^ 0x20 : b))),
        /checksum mismatch/,
      ],
      [
        'truncated',
        good.subarray(0, good.length - 10),
        /truncated or padded: the header says \d+ bytes of data, the file has \d+/,
      ],
      ['empty', Buffer.alloc(0), /not a flotilla registry backup: bad header/],
      ['text', Buffer.from('hello world, not a backup\n'), /not a flotilla registry backup: bad header/],
    ];
    // An etcd snapshot (bbolt file: meta page magic after a 16-byte page header) gets a pointer to etcdctl.
    const bolt = Buffer.alloc(4096);
    bolt.writeUInt32LE(0xed0cdaed, 16);
    cases.push(['etcd.db', bolt, /it is an etcd snapshot: restore it with `etcdctl snapshot restore`/]);
    // The data directory's own snapshot file is not a backup either.
    const snaps = (await readdir(join(dataDir, 'registry'))).filter((n) => n.endsWith('.log'));
    cases.push([
      'wal',
      await readFile(join(dataDir, 'registry', snaps[0]!)),
      /it is a file of a registry data directory/,
    ]);
    for (const [name, body, why] of cases) {
      const f = join(dir, name);
      await writeFile(f, body);
      const r = await cli('registry', 'restore', f, `--data-dir=${dataDir}`);
      expect(r.code, name).toBe(1);
      expect(r.err, name).toMatch(new RegExp(`^registry backup ${f}: `));
      expect(r.err, name).toMatch(why);
    }
    // A body that passes the checksum but is not valid: each row is checked, and named.
    const body = JSON.parse(good.toString('utf8', 16)) as { kvs: unknown[][]; leases: unknown[][] };
    body.kvs[1]![5] = '999';
    await writeFile(join(dir, 'badlease'), frame(body));
    await expect(readBackup(join(dir, 'badlease'))).rejects.toThrow(
      /kvs\[1\] \(key \/flotilla\/job\/a\.service\/target-state\): lease 999 is not one of the backup's leases/,
    );
    body.kvs[1]![5] = '0';
    body.kvs[0]![3] = want.revision + 5;
    await writeFile(join(dir, 'badrev'), frame(body));
    const e = await restoreDataDir(join(dataDir, 'registry'), join(dir, 'badrev')).catch((x: unknown) => x);
    expect(isCode(e, 'E_BACKUP') && e.details.field).toBe('kvs[0]');
    await expect(
      cli('registry', 'restore', join(dir, 'missing'), `--data-dir=${dataDir}`),
    ).resolves.toMatchObject({
      code: 1,
      err: `registry backup ${join(dir, 'missing')}: no such file\n`,
    });

    // Nothing was replaced or left behind.
    expect((await readdir(dataDir)).sort()).toEqual(['registry']);
    expect(await reopened(dataDir)).toEqual(want);
  });

  it('refuses to back up or restore while another process (the agent) holds the registry; --force restores', async () => {
    const { dataDir, want } = await seeded();
    const file = join(await t.dir(), 'reg.bak');
    expect((await cli('registry', 'backup', file, `--data-dir=${dataDir}`)).code).toBe(0);

    const holder = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        `const { EmbeddedKvStore } = await import(${JSON.stringify(new URL('../../../src/registry/embedded/index.ts', import.meta.url).pathname)});
         const s = await EmbeddedKvStore.open({ dataDir: process.argv[1] });
         await s.put('/held', 'yes');
         console.log('ready');
         setInterval(() => {}, 1000);`,
        join(dataDir, 'registry'),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(holder);
    await new Promise<void>((res, rej) => {
      holder.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && res());
      holder.once('exit', (c) => rej(new Error(`holder exited ${c}`)));
    });

    const b = await cli('registry', 'backup', join(await t.dir(), 'x.bak'), `--data-dir=${dataDir}`);
    expect(b.code).toBe(2);
    expect(b.err).toContain(`is in use by process ${holder.pid}`);
    expect(b.err).toContain('the agent is running on');
    const r = await cli('registry', 'restore', file, `--data-dir=${dataDir}`);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`is in use by process ${holder.pid}`);
    expect(r.err).toContain('give --force and restart it at once');
    expect((await readdir(dataDir)).sort()).toEqual(['registry']);

    const f = await cli('registry', 'restore', file, `--data-dir=${dataDir}`, '--force');
    expect(f.code, f.err).toBe(0);
    expect(f.err).toContain('restart it now (systemctl restart flotilla)');
    holder.kill('SIGKILL');
    await once(holder, 'exit');
    const got = await reopened(dataDir);
    expect(got.kvs).toEqual(want.kvs);
  });

  it('points an etcd-backed agent at etcdctl snapshot, and rejects a bad command line', async () => {
    const conf = join(await t.dir(), 'flotilla.conf');
    await writeFile(conf, 'etcd_servers=http://127.0.0.1:2379\n');
    const r = await cli('registry', 'backup', '/tmp/x.bak', `--config=${conf}`);
    expect(r.code).toBe(78);
    expect(r.err).toContain("this agent's registry is etcd (etcd_servers=http://127.0.0.1:2379)");
    expect(r.err).toContain('etcdctl snapshot save FILE');
    expect((await cli('registry', 'bogus', 'f')).code).toBe(64);
    expect((await cli('registry', 'backup')).code).toBe(64);
    expect((await cli('registry', 'backup', 'f', '--force', '--data-dir=/nonexistent')).code).toBe(64);
    const nd = await cli('registry', 'backup', '/tmp/x.bak', '--data-dir=/nonexistent-flotilla');
    expect(nd).toMatchObject({
      code: 1,
      err: 'registry data directory /nonexistent-flotilla/registry does not exist\n',
    });
  });
});

/** A backup file around `body`, with a correct header (to test the checks past the checksum). */
function frame(body: unknown): Buffer {
  const b = Buffer.from(JSON.stringify(body));
  const h = Buffer.alloc(16);
  h.write('FLREGBK1', 0, 'latin1');
  h.writeUInt32BE(b.length, 8);
  h.writeUInt32BE(crc32(b), 12);
  return Buffer.concat([h, b]);
}
