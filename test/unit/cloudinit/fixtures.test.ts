/**
 * Every `#cloud-config` block of coreos-cloudinit's Documentation/cloud-config.md
 * (test/fixtures/cloudinit/doc-N.yml) validates as it does there (no errors; the deprecation
 * warnings are coreos-cloudinit's own) and plans; the two examples in cloud-config/ too. Each plan is
 * also applied into a temp --root by the real executor, twice: the second run changes nothing.
 */
import {
  appendFileSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCloudConfig } from '../../../src/cloudinit/config.js';
import { applySubstitutions, substitutionsFrom } from '../../../src/cloudinit/env.js';
import { planCloudConfig } from '../../../src/cloudinit/plan.js';
import { formatEntry, validate } from '../../../src/cloudinit/validate.js';
import { applyPlan } from '../../../src/target/apply.js';
import { makeRoot, why, type TestRoot } from '../target/root.js';

const repo = join(import.meta.dirname, '..', '..', '..');
const fixture = (name: string) => readFileSync(join(repo, 'test', 'fixtures', 'cloudinit', name), 'utf8');
const MD = { sshPublicKeys: {}, publicIPv4: '203.0.113.29', privateIPv4: '192.0.2.13' };

function planOf(text: string) {
  const subs = substitutionsFrom(MD, {});
  const { config } = parseCloudConfig(applySubstitutions(text, subs).text);
  return planCloudConfig({
    config,
    metadata: MD,
    substitutions: subs,
    observed: { files: {}, hostname: 'h' },
  });
}

const DEPRECATED: Record<number, string[]> = {
  1: ['line 4: warning: deprecated key "etcd" (etcd is no longer shipped in Container Linux)'],
  2: ['line 4: warning: deprecated key "etcd2" (etcd2 is no longer shipped in Container Linux)'],
  3: ['line 4: warning: deprecated key "fleet" (fleet is no longer shipped in Container Linux)'],
};

/** What each block plans (reason: kind path|name), besides the COREOS_* /etc/environment merge. */
const PLANS: Record<number, string[]> = {
  1: ['coreos.etcd file /etc/flotilla/etcd-member.env', 'coreos.etcd unit etcd-member.service'],
  2: ['coreos.etcd2 file /etc/flotilla/etcd-member.env', 'coreos.etcd2 unit etcd-member.service'],
  3: ['coreos.fleet file /etc/flotilla/flotilla.conf', 'coreos.fleet unit flotilla.service'],
  4: ['coreos.flannel file /run/flannel/options.env'],
  5: ['coreos.locksmith file /etc/flotilla/update.conf'],
  6: ['coreos.update file /etc/flotilla/update.conf'],
  7: ['coreos.units[0] unit docker-redis.service'],
  8: ['coreos.units[0] unit docker.service'],
  9: ['coreos.units[0] unit etcd2.service', 'coreos.units[1] unit fleet.service'],
  10: ['ssh_authorized_keys (user core) user core', 'ssh_authorized_keys authorized-keys core'],
  11: ['hostname hostname coreos1'],
  12: ['users[0] user elroy', 'users[0].ssh_authorized_keys authorized-keys elroy'],
  13: [
    'write_files[0] file /etc/resolv.conf',
    'write_files[1] file /etc/motd',
    'write_files[2] file /tmp/like_this',
    'write_files[3] file /tmp/or_like_this',
    'write_files[4] file /tmp/todolist',
  ],
  14: ['manage_etc_hosts file /etc/hosts'],
};

const docs = Object.keys(PLANS).map(Number);

describe("coreos-cloudinit's documentation examples", { timeout: 30_000 }, () => {
  it.each(docs)('doc-%i.yml validates with no errors', (n) => {
    expect(validate(fixture(`doc-${n}.yml`)).map(formatEntry)).toEqual(DEPRECATED[n] ?? []);
  });

  it.each(docs)('doc-%i.yml plans', (n) => {
    const p = planOf(fixture(`doc-${n}.yml`));
    const got = p.actions
      .filter((a) => a.reason !== 'COREOS_*_IPV* from the metadata')
      .map((a) => {
        const x = a.action as {
          kind: string;
          path?: string;
          name?: string;
          user?: string;
          hostname?: string;
        };
        return `${a.reason} ${x.kind} ${x.path ?? x.name ?? x.user ?? x.hostname ?? ''}`;
      });
    expect(got).toEqual(PLANS[n]);
  });

  it('doc-13.yml decodes every encoding of the documentation (gzip !!binary, gzip+base64, base64)', () => {
    const files = planOf(fixture('doc-13.yml'))
      .actions.filter((a) => a.reason.startsWith('write_files'))
      .map((a) => a.action as { path: string; contents: Buffer });
    expect(files.map((f) => f.contents.toString())).toEqual([
      'nameserver 8.8.8.8\n',
      'Good news, everyone!\n',
      'Pack my box with five dozen liquor jugs',
      'Pack my box with five dozen liquor jugs',
      'Pack my box with five dozen liquor jugs',
    ]);
  });
});

describe('cloud-config/ examples', () => {
  it.each(['cluster-member.yml', 'single-machine.yml'])('%s validates (no errors) and plans', (name) => {
    const text = readFileSync(join(repo, 'cloud-config', name), 'utf8');
    const entries = validate(text);
    expect(entries.filter((e) => e.kind === 'error')).toEqual([]);
    expect(entries.every((e) => e.message.startsWith('deprecated key '))).toBe(true);
    expect(planOf(text).actions.length).toBeGreaterThan(3);
  });

  it('cluster-member.yml gives an etcd member of the 3-machine cluster and the agent in it', () => {
    const a = planOf(readFileSync(join(repo, 'cloud-config', 'cluster-member.yml'), 'utf8')).actions;
    const text = (p: string) =>
      (
        a.find((x) => x.action.kind === 'file' && x.action.path === p)!.action as { contents: Buffer }
      ).contents.toString();
    expect(text('/etc/flotilla/etcd-member.env')).toMatch(
      /^ETCD_INITIAL_ADVERTISE_PEER_URLS=http:\/\/192\.0\.2\.13:2380$/m,
    );
    expect(text('/etc/flotilla/etcd-member.env')).toMatch(
      /^ETCD_INITIAL_CLUSTER=m1=http:\/\/10\.0\.0\.11:2380,m2=/m,
    );
    expect(text('/etc/flotilla/flotilla.conf')).toMatch(/^metadata=role=worker,region=lab$/m);
    expect(text('/etc/flotilla/update.conf')).toMatch(/^REBOOT_STRATEGY=etcd-lock$/m);
  });
});

// Applied for real by the one executor (src/target/apply.ts) into a temporary root seeded like a
// Debian image with flotilla installed: base accounts plus `core` (the user top-level
// ssh_authorized_keys are for), the project's units in /etc/systemd/system. Needs root (real
// shadow-utils --root); skipped otherwise, as the executor's own tests are.
function seededRoot(): TestRoot {
  const r = makeRoot();
  appendFileSync(r.at('etc/passwd'), 'core:x:500:500:CoreOS Admin:/home/core:/bin/bash\n');
  appendFileSync(r.at('etc/group'), 'core:x:500:\n');
  appendFileSync(r.at('etc/shadow'), 'core:*:19000:0:99999:7:::\n');
  appendFileSync(r.at('etc/gshadow'), 'core:*::\n');
  mkdirSync(r.at('home/core'), { mode: 0o755 });
  chownSync(r.at('home/core'), 500, 500);
  mkdirSync(r.at('etc/systemd/system'), { recursive: true });
  // as the install path does: every unit the project ships
  for (const u of readdirSync(join(repo, 'systemd')).filter((f) =>
    /\.(service|socket|path|target|timer)$/.test(f),
  ))
    copyFileSync(join(repo, 'systemd', u), r.at(`etc/systemd/system/${u}`));
  return r;
}

describe.skipIf(why)('applied into a temp --root by the executor', { timeout: 60_000 }, () => {
  it.each(docs)('doc-%i.yml applies, and applying it again changes nothing', async (n) => {
    const r = seededRoot();
    try {
      const first = await applyPlan(planOf(fixture(`doc-${n}.yml`)).actions, { root: r.dir, live: false });
      expect(first.changed.length).toBeGreaterThan(0);
      const before = r.snapshot();
      const again = await applyPlan(planOf(fixture(`doc-${n}.yml`)).actions, { root: r.dir, live: false });
      expect(again.changed.map((c) => c.reason)).toEqual([]);
      expect(r.snapshot()).toBe(before);
    } finally {
      r.cleanup();
    }
  });

  it('doc-13.yml: the files are there with their modes and decoded contents', async () => {
    const r = seededRoot();
    try {
      await applyPlan(planOf(fixture('doc-13.yml')).actions, { root: r.dir, live: false });
      expect(r.read('etc/resolv.conf')).toBe('nameserver 8.8.8.8\n');
      expect(r.read('tmp/todolist')).toBe('Pack my box with five dozen liquor jugs');
      expect(statSync(r.at('tmp/like_this')).mode & 0o7777).toBe(0o644);
    } finally {
      r.cleanup();
    }
  });

  it('cluster-member.yml applies: etcd-member.env, flotilla.conf, update.conf, units enabled', async () => {
    const r = seededRoot();
    try {
      const text = readFileSync(join(repo, 'cloud-config', 'cluster-member.yml'), 'utf8');
      await applyPlan(planOf(text).actions, { root: r.dir, live: false });
      expect(r.read('etc/flotilla/etcd-member.env')).toMatch(/^ETCD_NAME=m1$/m);
      expect(r.read('etc/flotilla/flotilla.conf')).toMatch(/^public_ip=192\.0\.2\.13$/m);
      expect(r.read('etc/flotilla/update.conf')).toMatch(/^REBOOT_STRATEGY=etcd-lock$/m);
      expect(r.exists('etc/systemd/system/multi-user.target.wants/etcd-member.service')).toBe(true);
      expect(r.exists('etc/systemd/system/multi-user.target.wants/flotilla.service')).toBe(true);
      expect(r.exists('etc/systemd/system/timers.target.wants/etcd-snapshot.timer')).toBe(true);
      expect(r.read('etc/systemd/system/etcd-snapshot.service')).toMatch(
        /snapshot save \/var\/backups\/etcd-snapshot\.db$/m,
      );
    } finally {
      r.cleanup();
    }
  });
});
