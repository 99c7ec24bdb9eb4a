/**
 * The planner (pure): order (§1.6), contents of the files it writes for the coreos.* sections,
 * idempotence of the plan, and each bad input refused with the key and line.
 */
import { describe, expect, it } from 'vitest';
import { parseCloudConfig } from '../../../src/cloudinit/config.js';
import { applySubstitutions, substitutionsFrom } from '../../../src/cloudinit/env.js';
import { mergeEnvironment, planCloudConfig, type PlanInput } from '../../../src/cloudinit/plan.js';
import type { Metadata } from '../../../src/datasource/types.js';
import { isCode } from '../../../src/lib/errors.js';
import type { FileAction, PlannedAction } from '../../../src/target/types.js';

const MD: Metadata = { sshPublicKeys: {}, privateIPv4: '10.0.0.11', publicIPv4: '203.0.113.29' };

const NO_IP: Metadata = { sshPublicKeys: {} };

function plan(doc: string, over: Partial<PlanInput> = {}, md: Metadata = NO_IP) {
  const subs = substitutionsFrom(md, {});
  const text = applySubstitutions(doc, subs).text;
  return planCloudConfig({
    config: parseCloudConfig(text).config,
    metadata: md,
    substitutions: subs,
    observed: { files: {}, hostname: 'old' },
    ...over,
  });
}

const summary = (actions: PlannedAction[]) =>
  actions.map((a) => {
    const x = a.action as { kind: string; path?: string; name?: string; user?: string; hostname?: string };
    return `${x.kind} ${x.path ?? x.name ?? x.user ?? x.hostname ?? ''}`;
  });

function file(actions: PlannedAction[], path: string): FileAction {
  const f = actions.find((a) => a.action.kind === 'file' && a.action.path === path);
  if (!f) throw new Error(`no file ${path} in ${summary(actions).join(', ')}`);
  return f.action as FileAction;
}

const FULL = `#cloud-config
coreos:
  units:
    - name: app.service
      command: start
      enable: true
      content: |
        [Service]
        ExecStart=/bin/true
    - name: 10-lan.network
      runtime: true
      content: "[Match]\\nName=eth0\\n"
  etcd2:
    name: m1
    initial-cluster: m1=http://$private_ipv4:2380
    listen-client-urls: http://$private_ipv4:2379,http://127.0.0.1:2379
  fleet:
    public-ip: $private_ipv4
    metadata: role=web
    etcd_servers: http://127.0.0.1:2379
  flannel:
    etcd_prefix: /coreos.com/network2
  update:
    reboot-strategy: off
    group: stable
  locksmith:
    group: web
    window_start: Thu 04:00
    window_length: 1h
  oem:
    id: qemu
    name: QEMU
    version-id: 1.0
manage_etc_hosts: localhost
write_files:
  - path: /etc/motd
    content: hi
hostname: m1
users:
  - name: ops
    passwd: $6$salt$hash
    groups: [adm, docker]
    ssh_authorized_keys: [ssh-ed25519 AAAA ops]
ssh_authorized_keys:
  - ssh-ed25519 BBBB core
`;

describe('planCloudConfig: order and contents', () => {
  it('plans in coreos-cloudinit apply order', () => {
    const p = plan(FULL, {}, MD);
    expect(summary(p.actions)).toEqual([
      'hostname m1',
      'user ops',
      'authorized-keys ops',
      'user core',
      'authorized-keys core',
      'file /etc/motd',
      'file /etc/oem-release',
      'file /etc/flotilla/update.conf',
      'file /etc/hosts',
      'file /run/flannel/options.env',
      'file /etc/flotilla/etcd-member.env',
      'file /etc/flotilla/flotilla.conf',
      'file /etc/environment',
      'unit app.service',
      'file /run/systemd/network/10-lan.network',
      'unit etcd-member.service',
      'unit flotilla.service',
      'unit systemd-networkd.service',
    ]);
  });

  it('is idempotent: planning the same input twice gives the same actions', () => {
    expect(plan(FULL, {}, MD).actions).toEqual(plan(FULL, {}, MD).actions);
  });

  it('writes the service files with the metadata substituted', () => {
    const a = plan(FULL, {}, MD).actions;
    expect(file(a, '/etc/flotilla/etcd-member.env').contents.toString()).toBe(
      'ETCD_INITIAL_CLUSTER=m1=http://10.0.0.11:2380\n' +
        'ETCD_LISTEN_CLIENT_URLS=http://10.0.0.11:2379,http://127.0.0.1:2379\n' +
        'ETCD_NAME=m1\n' +
        'ETCD_DATA_DIR=/var/lib/etcd-member\n',
    );
    expect(file(a, '/etc/flotilla/flotilla.conf').contents.toString()).toBe(
      'etcd_servers=http://127.0.0.1:2379\nmetadata=role=web\npublic_ip=10.0.0.11\n',
    );
    expect(file(a, '/etc/flotilla/flotilla.conf').mode).toBe(0o644);
    expect(file(a, '/run/flannel/options.env').contents.toString()).toBe(
      'FLANNELD_ETCD_PREFIX=/coreos.com/network2',
    );
    expect(file(a, '/etc/flotilla/update.conf').contents.toString()).toBe(
      'GROUP=stable\nLOCKSMITHD_GROUP=web\nREBOOT_STRATEGY=off\nREBOOT_WINDOW_LENGTH=1h\nREBOOT_WINDOW_START=Thu 04:00\n',
    );
    expect(file(a, '/etc/oem-release').contents.toString()).toBe(
      'ID=qemu\nVERSION_ID=1.0\nNAME="QEMU"\nHOME_URL=""\nBUG_REPORT_URL=""\n',
    );
    expect(file(a, '/etc/hosts').contents.toString()).toBe('127.0.0.1 m1\n');
    expect(file(a, '/etc/environment').contents.toString()).toBe(
      'COREOS_PRIVATE_IPV4=10.0.0.11\nCOREOS_PUBLIC_IPV4=203.0.113.29\n',
    );
    const units = a.filter((x) => x.action.kind === 'unit').map((x) => x.action);
    expect(units[0]).toEqual({
      kind: 'unit',
      name: 'app.service',
      contents: '[Service]\nExecStart=/bin/true\n',
      enable: true,
      command: 'start',
    });
    expect(units).toContainEqual({ kind: 'unit', name: 'etcd-member.service', enable: true });
    expect(units).toContainEqual({ kind: 'unit', name: 'flotilla.service', enable: true });
    // started after the apply without waiting: at boot flotilla-cloudinit.service is ordered before them
    expect(plan(FULL, {}, MD).startAfterApply).toEqual(['etcd-member.service', 'flotilla.service']);
    expect(plan('#cloud-config\nhostname: a\n').startAfterApply).toEqual([]);
  });

  it('users: every field, the key set name from -ssh-key-name', () => {
    const p = plan(
      `#cloud-config
users:
  - name: svc
    gecos: Service Account
    homedir: /srv/svc
    no-create-home: true
    primary-group: svc
    groups: [a, b]
    no-user-group: true
    system: true
    no-log-init: true
    shell: /bin/sh
    ssh-authorized-keys: ["  ssh-ed25519 CCCC svc  "]
`,
      { sshKeyName: 'provision' },
    );
    expect(p.actions.map((a) => a.action)).toEqual([
      {
        kind: 'user',
        name: 'svc',
        gecos: 'Service Account',
        homeDir: '/srv/svc',
        noCreateHome: true,
        primaryGroup: 'svc',
        groups: ['a', 'b'],
        noUserGroup: true,
        noLogInit: true,
        shell: '/bin/sh',
        system: true,
      },
      { kind: 'authorized-keys', user: 'svc', setName: 'provision', keys: ['ssh-ed25519 CCCC svc'] },
    ]);
  });

  it('merges the metadata: user-data hostname wins (with a warning), metadata keys go to core', () => {
    const md: Metadata = { sshPublicKeys: { b: 'ssh-rsa B', a: 'ssh-rsa A' }, hostname: 'from-md' };
    const p = plan('#cloud-config\nhostname: from-ud\n', {}, md);
    expect(summary(p.actions)).toEqual(['hostname from-ud', 'user core', 'authorized-keys core']);
    expect(p.actions[2]!.action).toMatchObject({
      setName: 'coreos-cloudinit',
      keys: ['ssh-rsa A', 'ssh-rsa B'],
    });
    expect(p.warnings.join('\n')).toMatch(/"from-ud" from user-data wins over the metadata's "from-md"/);
    expect(summary(plan('#cloud-config\n', {}, md).actions)[0]).toBe('hostname from-md');
  });

  it('write_files: encodings, octal permissions, owner, defaults', () => {
    const p = plan(`#cloud-config
write_files:
  - path: /a
    permissions: 0600
    owner: core:adm
    content: plain
  - path: /b
    encoding: b64
    permissions: '0755'
    owner: "1000"
    content: aGVsbG8K
  - path: /c
    encoding: gzip+base64
    content: H4sIAOC3tVQAA8tIzcnJ5wIAIDA6NgYAAAA=
  - path: relative/d
    content: x
`);
    const f = p.actions.map((a) => a.action as FileAction);
    expect(f.map((x) => [x.path, x.mode, x.owner, x.contents.toString()])).toEqual([
      ['/a', 0o600, { user: 'core', group: 'adm' }, 'plain'],
      ['/b', 0o755, { user: 1000 }, 'hello\n'],
      ['/c', 0o644, undefined, 'hello\n'],
      ['/relative/d', 0o644, undefined, 'x'],
    ]);
  });

  it('keeps other lines of update.conf and flotilla.conf, replacing keys in place', () => {
    const p = plan('#cloud-config\ncoreos:\n  update:\n    group: beta\n  fleet:\n    metadata: a=b\n', {
      observed: {
        hostname: 'h',
        files: {
          '/etc/flotilla/update.conf': 'GROUP=stable\nSERVER=https://u.example/\n',
          '/etc/flotilla/flotilla.conf': '# mine\nagent_ttl=10s\nmetadata=old=1\n',
        },
      },
    });
    expect(file(p.actions, '/etc/flotilla/update.conf').contents.toString()).toBe(
      'GROUP=beta\nSERVER=https://u.example/\n',
    );
    expect(file(p.actions, '/etc/flotilla/flotilla.conf').contents.toString()).toBe(
      '# mine\nagent_ttl=10s\nmetadata=a=b\n',
    );
  });

  it('a write_files entry for /etc/environment replaces the COREOS_* merge', () => {
    const p = plan('#cloud-config\nwrite_files:\n  - path: /etc/environment\n    content: "A=1\\n"\n');
    expect(summary(p.actions)).toEqual(['file /etc/environment']);
    expect(
      mergeEnvironment('PATH=/bin\nCOREOS_PUBLIC_IPV4=1.1.1.1\n', {
        COREOS_PUBLIC_IPV4: '2.2.2.2',
        COREOS_PRIVATE_IPV4: '10.0.0.1',
      }),
    ).toBe('PATH=/bin\nCOREOS_PUBLIC_IPV4=2.2.2.2\nCOREOS_PRIVATE_IPV4=10.0.0.1\n');
  });

  it('a secret makes the file 0600', () => {
    const p = plan(
      '#cloud-config\ncoreos:\n  fleet:\n    etcd_username: root\n    etcd_password: s3cret\n  locksmith:\n    etcd_password: s3cret\n',
    );
    expect(file(p.actions, '/etc/flotilla/flotilla.conf').mode).toBe(0o600);
    expect(file(p.actions, '/etc/flotilla/update.conf').mode).toBe(0o600);
    expect(p.warnings.join('\n')).not.toContain('s3cret');
  });

  it('mask, runtime, drop-ins and network units', () => {
    const p = plan(`#cloud-config
coreos:
  units:
    - name: docker.service
      drop-ins:
        - name: 50-opts.conf
          content: "[Service]\\nEnvironment=A=1\\n"
        - name: ""
          content: x
    - name: bad.service
      mask: true
      runtime: true
    - name: 00-eth.network
      command: start
      content: "[Match]\\n"
`);
    expect(p.actions.map((a) => a.action)).toEqual([
      {
        kind: 'unit',
        name: 'docker.service',
        dropIns: [{ name: '50-opts.conf', contents: '[Service]\nEnvironment=A=1\n' }],
      },
      { kind: 'unit', name: 'bad.service', runtime: true, mask: true },
      {
        kind: 'file',
        path: '/etc/systemd/network/00-eth.network',
        contents: Buffer.from('[Match]\n'),
        mode: 0o644,
      },
      { kind: 'unit', name: 'systemd-networkd.service', command: 'restart' },
    ]);
    expect(p.warnings.join('\n')).toMatch(/drop-in without a name or content is skipped/);
    expect(p.warnings.join('\n')).toMatch(/command is ignored for network units/);
  });
});

describe('planCloudConfig: bad input is refused with its key and line, before anything is applied', () => {
  const refuse = (doc: string, re: RegExp) => {
    let err: unknown;
    try {
      plan(doc);
    } catch (e) {
      err = e;
    }
    expect(isCode(err, 'E_CLOUDCONFIG'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(re);
  };

  it.each([
    [
      '#cloud-config\nwrite_files:\n  - path: ../../etc/passwd\n    content: x\n',
      /^line 3: write_files\[0\]\.path: "..\/..\/etc\/passwd" escapes the root/,
    ],
    [
      '#cloud-config\nwrite_files:\n  - path: /a/../../b\n    content: x\n',
      /line 3: write_files\[0\]\.path: .* escapes the root/,
    ],
    ['#cloud-config\nwrite_files:\n  - content: x\n', /line 3: write_files\[0\]\.path: a path is required/],
    [
      '#cloud-config\nwrite_files:\n  - path: /a\n    encoding: base64\n    content: "!!!"\n',
      /invalid cloud-config:\nline 5: error: content cannot be decoded as "base64"/,
    ],
    [
      '#cloud-config\nwrite_files:\n  - path: /a\n    encoding: gzip\n    content: nope\n',
      /line 5: error: content cannot be decoded as "gzip"/,
    ],
    [
      '#cloud-config\nwrite_files:\n  - path: /a\n    owner: "bad name:x"\n',
      /line 3: write_files\[0\]\.owner: "bad name" is not a valid user or group name/,
    ],
    [
      '#cloud-config\ncoreos:\n  units:\n    - name: nodot\n',
      /line 4: coreos\.units\[0\]\.name: .*unit name must contain "\."/,
    ],
    [
      '#cloud-config\ncoreos:\n  units:\n    - name: ../x.service\n',
      /line 4: coreos\.units\[0\]\.name: .*"\/"/,
    ],
    [
      '#cloud-config\ncoreos:\n  units:\n    - name: a.service\n      drop-ins:\n        - name: ../x.conf\n          content: x\n',
      /coreos\.units\[0\]\.drop_ins: "..\/x.conf" is not a file name/,
    ],
    [
      '#cloud-config\nusers:\n  - name: elroy\n    coreos-ssh-import-github: elroy\n',
      /line 3: users\[0\]\.coreos_ssh_import_github: importing keys from GitHub or a URL is not supported/,
    ],
    [
      '#cloud-config\nusers:\n  - name: elroy\n    coreos-ssh-import-github-users: [a]\n',
      /users\[0\]\.coreos_ssh_import_github_users: importing keys/,
    ],
    [
      '#cloud-config\nusers:\n  - name: elroy\n    coreos-ssh-import-url: https://example.com/keys\n',
      /users\[0\]\.coreos_ssh_import_url: importing keys/,
    ],
    [
      '#cloud-config\nusers:\n  - name: "bad user"\n',
      /line 3: users\[0\]\.name: "bad user" is not a valid user or group name/,
    ],
    [
      '#cloud-config\nmanage_etc_hosts: yes\n',
      /line 2: manage_etc_hosts: Invalid option to manage_etc_hosts/,
    ],
    ['#cloud-config\nhostname: "bad host"\n', /line 2: hostname: "bad host" is not a valid hostname/],
    [
      '#cloud-config\ncoreos:\n  update:\n    reboot-strategy: false\n',
      /invalid cloud-config:\nline 4: error: invalid value false/,
    ],
    [
      '#cloud-config\ncoreos:\n  units:\n    - enable: "yes"\n      name: a.service\n',
      /line 4: warning: incorrect type for "enable" \(want bool\)/,
    ],
    [
      '#cloud-config\ncoreos:\n  locksmith:\n    window_start: Thu 04:00\n',
      /line 4: coreos\.locksmith\.window_start: .*needs both a start and a length/,
    ],
    [
      '#cloud-config\ncoreos:\n  fleet:\n    etcd_servers: not-a-url\n',
      /line 4: coreos\.fleet\.etcd_servers: "not-a-url" is not a URL/,
    ],
    [
      '#cloud-config\ncoreos:\n  fleet:\n    agent_ttl: forever\n',
      /line 4: coreos\.fleet\.agent_ttl: .*not a positive duration/,
    ],
    [
      '#cloud-config\ncoreos:\n  etcd2:\n    name: "a\\nb"\n',
      /line 4: coreos\.etcd2\.name: must be a single line/,
    ],
    [
      '#cloud-config\nwrite_files:\n  - path: /usr/bin/x\n    content: x\n',
      /line 3: error: file cannot be written to a read-only filesystem/,
    ],
  ])('%j', (doc, re) => refuse(doc, re));
});

describe('null values', () => {
  it('an empty value is a warning only (the zero value), as go-yaml decoded it', () => {
    const p = plan('#cloud-config\nhostname:\nwrite_files:\n  - path: /a\n    content:\n');
    expect(summary(p.actions)).toEqual(['file /a']);
    expect((p.actions[0]!.action as FileAction).contents.toString()).toBe('');
  });
});

describe('substitution', () => {
  it('uses the metadata, then COREOS_* from the environment, and warns for every empty token', () => {
    const subs = substitutionsFrom(
      { sshPublicKeys: {}, publicIPv4: '203.0.113.1' },
      { COREOS_PRIVATE_IPV6: 'fd00::1' },
    );
    const r = applySubstitutions(
      '#cloud-config\na: $public_ipv4\nb: http://$private_ipv4:2379\nc: $private_ipv6\nd: \\$private_ipv4\n',
      subs,
    );
    expect(r.text).toBe('#cloud-config\na: 203.0.113.1\nb: http://:2379\nc: fd00::1\nd: $private_ipv4\n');
    expect(r.warnings.map((w) => w.message)).toEqual([
      'line 3: $private_ipv4 is empty: the datasource has no private IPv4 address and COREOS_PRIVATE_IPV4 is not set',
    ]);
    expect(subs.environment).toEqual({ COREOS_PUBLIC_IPV4: '203.0.113.1', COREOS_PRIVATE_IPV6: 'fd00::1' });
  });
});
