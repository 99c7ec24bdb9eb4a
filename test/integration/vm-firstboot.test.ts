/**
 * First boot, proven in real QEMU VMs (issue 14, Tests 1–3): the image (test/env/vm/image.sh) ships
 * the project's units with flotilla-cloudinit (and flotilla-ignition) enabled, as the install path
 * does; the VM then boots with nothing but its config.
 *
 * The same two VMs also prove the VM route itself (test/env/vm): a Debian VM built from Debian's
 * packages boots under TCG to a running systemd with the project shared at /project, runs node and
 * the CLI, has no route out, and sees the exact bytes of its config drive and fw_cfg config where
 * coreos-cloudinit -from-configdrive and Ignition read them. (Two VMs for everything: each boot
 * costs a minute or more of CI time under TCG.)
 *
 * - Test 1: a config drive (ISO9660, label config-2) holding a cloud-config with coreos.units,
 *   write_files, users, coreos.etcd2 and coreos.fleet. After boot the unit runs, the files and the
 *   user exist, etcd runs and the agent is registered with the metadata from coreos.fleet. Re-running
 *   coreos-cloudinit converges: no file rewritten, no user or key duplicated.
 * - Test 3 (same VM, after Test 1): VMware guestinfo through the stand-in vmware-rpctool
 *   (test/support, the one stand-in allowed: real VMware cannot run here) answering
 *   guestinfo.coreos.config.data.
 * - Test 2: QEMU fw_cfg (opt/com.coreos/config) with an Ignition config, applied at first boot only.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { describeVm, shQuote, useVm, type Vm } from '../support/vm.js';

const work = mkdtempSync(join(tmpdir(), 'flotilla-vm-fb-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const OPS_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFlotillaFirstBootTestKeyOnlyForTests00000 ops@test';
const OPS_HASH = execFileSync('openssl', ['passwd', '-6', '-salt', 'flotillafb', 'not-a-real-secret'], {
  encoding: 'utf8',
}).trim();
const B64_BODY = 'written from base64\n';

const CLOUD_CONFIG = `#cloud-config
hostname: fbcc-renamed
users:
  - name: ops
    passwd: ${OPS_HASH}
    groups:
      - adm
    ssh_authorized_keys:
      - ${OPS_KEY}
write_files:
  - path: /etc/firstboot/plain
    permissions: '0640'
    owner: root:adm
    content: |
      plain content
  - path: /etc/firstboot/b64
    encoding: b64
    content: ${Buffer.from(B64_BODY).toString('base64')}
  - path: /etc/firstboot/quoted
    content: "quote ' and \\" and $HOME"
coreos:
  etcd2:
    name: fbcc
    data-dir: /var/lib/etcd-member
    listen-client-urls: http://127.0.0.1:2379
    advertise-client-urls: http://127.0.0.1:2379
    listen-peer-urls: http://127.0.0.1:2380
    initial-advertise-peer-urls: http://127.0.0.1:2380
    initial-cluster: fbcc=http://127.0.0.1:2380
    initial-cluster-state: new
  fleet:
    etcd_servers: http://127.0.0.1:2379
    metadata: role=firstboot,disk=ssd
  units:
    - name: hello-firstboot.service
      enable: true
      command: start
      content: |
        [Unit]
        Description=unit from cloud-config

        [Service]
        ExecStart=/bin/sh -c 'echo hello-firstboot; exec sleep infinity'

        [Install]
        WantedBy=multi-user.target
`;

const drive = join(work, 'drive');
const META_DATA = JSON.stringify({ uuid: '5b1e3f0e-2a55-4c55-8c3c-0f1e2d3c4b5a', hostname: 'fbcc' });
mkdirSync(join(drive, 'openstack', 'latest'), { recursive: true });
writeFileSync(join(drive, 'openstack', 'latest', 'user_data'), CLOUD_CONFIG);
writeFileSync(join(drive, 'openstack', 'latest', 'meta_data.json'), META_DATA);

/** Poll a guest shell script until it exits 0 (returns its stdout) or the time is up (throws). */
async function until(vm: Vm, script: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const r = await vm.sh(script, { timeoutMs: 60_000 });
    if (r.code === 0) return r.stdout;
    last = `${r.stdout}${r.stderr}`.trim();
    if (Date.now() > deadline) throw new Error(`${script}: still failing after ${timeoutMs} ms: ${last}`);
    await new Promise((res) => setTimeout(res, 2000));
  }
}

describeVm('first boot from a config drive with a cloud-config (Tests 1 and 3)', () => {
  const vm = useVm('fbcc', { configDrive: drive });

  it('the VM route: boots to a running (or degraded) systemd, with its own machine-id', async () => {
    const r = await vm().sh('systemctl is-system-running --wait', { timeoutMs: 240_000 });
    const state = r.stdout.trim();
    if (state === 'degraded') {
      console.warn(`[vm-firstboot] degraded: ${(await vm().sh('systemctl --failed --no-legend')).stdout}`);
    }
    expect(['running', 'degraded']).toContain(state);
    expect((await vm().check('cat', '/proc/1/comm')).trim()).toBe('systemd');
    // each VM has its own machine-id, made at first boot from the image's empty one
    expect((await vm().check('cat', '/etc/machine-id')).trim()).toMatch(/^[0-9a-f]{32}$/);
  }, 300_000);

  it('the VM route: runs node and the project built in dist/, shared read-only at /project', async () => {
    expect((await vm().check('node', '--version')).trim()).toBe(process.version);
    expect((await vm().check('flotilla', 'version')).trim()).toMatch(/^flotilla version \d+\.\d+/);
    expect((await vm().check('findmnt', '-no', 'FSTYPE,OPTIONS', '/project')).trim()).toMatch(/^9p\s+ro,/);
  });

  it('the VM route: QEMU user networking with no route out (restrict=on); qemu_fw_cfg sysfs and isofs', async () => {
    expect(await vm().check('ip', '-4', '-o', 'addr', 'show')).toMatch(/inet 10\.0\.2\.15\/24/);
    expect((await vm().check('ip', '-4', 'route', 'show', 'default')).trim()).toBe('');
    expect((await vm().check('ls', '/sys/firmware/qemu_fw_cfg/by_name')).split('\n')).toContain('etc');
    expect((await vm().run('modprobe', '-n', '-v', 'isofs')).code).toBe(0);
  });

  it('the config drive: iso9660 labelled config-2 with user_data and meta_data.json byte for byte', async () => {
    const dev = (await vm().check('blkid', '-L', 'config-2')).trim();
    expect(dev).toMatch(/^\/dev\/vd[b-z]$/);
    expect((await vm().check('blkid', '-o', 'value', '-s', 'TYPE', dev)).trim()).toBe('iso9660');
    await vm().check('mkdir', '-p', '/mnt/config-2');
    await vm().check('mount', '-o', 'ro', dev, '/mnt/config-2');
    try {
      expect(await vm().check('cat', '/mnt/config-2/openstack/latest/user_data')).toBe(CLOUD_CONFIG);
      expect(await vm().check('cat', '/mnt/config-2/openstack/latest/meta_data.json')).toBe(META_DATA);
    } finally {
      await vm().run('umount', '/mnt/config-2');
    }
  });

  it('flotilla-cloudinit ran at boot and succeeded', async () => {
    await vm().sh('systemctl is-system-running --wait', { timeoutMs: 240_000 });
    const r = await vm().run('systemctl', 'show', '-p', 'Result,ActiveState', 'flotilla-cloudinit.service');
    expect(r.stdout).toMatch(/Result=success/);
  }, 300_000);

  it('applies hostname, write_files (mode, owner, encoding) and users', async () => {
    expect((await vm().check('cat', '/etc/hostname')).trim()).toBe('fbcc-renamed');
    expect((await vm().check('hostname')).trim()).toBe('fbcc-renamed');
    expect(await vm().check('cat', '/etc/firstboot/plain')).toBe('plain content\n');
    expect((await vm().check('stat', '-c', '%a %U %G', '/etc/firstboot/plain')).trim()).toBe('640 root adm');
    expect(await vm().check('cat', '/etc/firstboot/b64')).toBe(B64_BODY);
    // quotes and a $ pass through the config drive and the YAML untouched (no shell on the way)
    expect(await vm().check('cat', '/etc/firstboot/quoted')).toBe(`quote ' and " and $HOME`);
    expect((await vm().check('id', '-nG', 'ops')).split(/\s+/)).toContain('adm');
    const shadow = (await vm().check('getent', 'shadow', 'ops')).split(':');
    expect(shadow[1]).toBe(OPS_HASH);
    const home = (await vm().check('getent', 'passwd', 'ops')).split(':')[5] ?? '';
    expect(await vm().check('cat', `${home}/.ssh/authorized_keys`)).toContain(OPS_KEY);
    // the hash went to /etc/shadow, never to the journal
    const journal = await vm().sh('journalctl -b --no-pager -o cat');
    expect(journal.stdout).not.toContain(OPS_HASH);
  });

  it('runs the unit from coreos.units, enabled', async () => {
    await until(vm(), 'systemctl is-active hello-firstboot.service', 60_000);
    expect((await vm().check('systemctl', 'is-enabled', 'hello-firstboot.service')).trim()).toBe('enabled');
    const log = await vm().check(
      'journalctl',
      '-b',
      '-u',
      'hello-firstboot.service',
      '--no-pager',
      '-o',
      'cat',
    );
    expect(log).toContain('hello-firstboot');
  }, 120_000);

  it('runs etcd from coreos.etcd2 and the agent from coreos.fleet, registered with its metadata', async () => {
    await until(vm(), 'systemctl is-active etcd-member.service', 120_000);
    expect(await vm().check('cat', '/etc/flotilla/etcd-member.env')).toMatch(/^ETCD_NAME=fbcc$/m);
    const machines = await until(
      vm(),
      'fleetctl list-machines --no-legend --full --fields=machine,metadata | grep role=firstboot',
      180_000,
    );
    expect(machines).toMatch(/disk=ssd/);
    const id = (await vm().check('cat', '/etc/machine-id')).trim();
    expect(machines).toContain(id);
  }, 180_000);

  it('re-running coreos-cloudinit converges: no file rewritten, no user or key duplicated', async () => {
    const before = await vm().check(
      'stat',
      '-c',
      '%Y %i',
      '/etc/firstboot/plain',
      '/etc/flotilla/flotilla.conf',
    );
    const r = await vm().sh('coreos-cloudinit -from-configdrive "$(blkid -L config-2)"', {
      timeoutMs: 120_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(
      await vm().check('stat', '-c', '%Y %i', '/etc/firstboot/plain', '/etc/flotilla/flotilla.conf'),
    ).toBe(before);
    expect((await vm().check('grep', '-c', '^ops:', '/etc/passwd')).trim()).toBe('1');
    const home = (await vm().check('getent', 'passwd', 'ops')).split(':')[5] ?? '';
    const keys = await vm().check('cat', `${home}/.ssh/authorized_keys`);
    expect(keys.split('\n').filter((l) => l === OPS_KEY)).toHaveLength(1);
  }, 180_000);

  it('Test 3: VMware guestinfo through the stand-in vmware-rpctool', async () => {
    const cc = `#cloud-config\nwrite_files:\n  - path: /etc/from-guestinfo\n    content: guestinfo says hi\n`;
    const fixture = JSON.stringify({
      'guestinfo.coreos.config.data': Buffer.from(cc).toString('base64'),
      'guestinfo.coreos.config.data.encoding': 'base64',
      'guestinfo.hostname': 'fbcc-vmware',
    });
    // the stand-in answers for the VMware tools; the DMI vendor says VMware, as on a VMware guest
    const script = [
      `printf %s ${shQuote(fixture)} > /run/guestinfo.json`,
      'printf "VMware, Inc.\\n" > /run/sys_vendor',
      'mount --bind /run/sys_vendor /sys/class/dmi/id/sys_vendor',
      'trap "umount /sys/class/dmi/id/sys_vendor" EXIT',
      'PATH=/project/test/support:$PATH VMWARE_GUESTINFO_FIXTURE=/run/guestinfo.json VMWARE_GUESTINFO_LOG=/run/guestinfo.log coreos-cloudinit -from-vmware-guestinfo',
    ].join('\n');
    const r = await vm().sh(script, { timeoutMs: 120_000 });
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
    expect(await vm().check('cat', '/etc/from-guestinfo')).toBe('guestinfo says hi');
    expect((await vm().check('hostname')).trim()).toBe('fbcc-vmware');
    expect(await vm().check('cat', '/run/guestinfo.log')).toContain('info-get guestinfo.coreos.config.data');
  }, 180_000);
});

const IGNITION = {
  ignition: { version: '3.3.0' },
  storage: {
    files: [
      {
        path: '/etc/ignited/hello',
        mode: 0o600,
        contents: { source: 'data:,ignited%20at%20first%20boot%0A' },
      },
    ],
    directories: [{ path: '/var/lib/ignited', mode: 0o750 }],
    links: [{ path: '/etc/ignited/link', target: '/etc/ignited/hello' }],
  },
  systemd: {
    units: [
      {
        name: 'ignited.service',
        enabled: true,
        contents:
          '[Unit]\nDescription=unit from Ignition\n\n[Service]\nExecStart=/bin/sh -c "echo ignited-unit; exec sleep infinity"\n\n[Install]\nWantedBy=multi-user.target\n',
      },
    ],
  },
  passwd: {
    users: [{ name: 'igops', groups: ['adm'], sshAuthorizedKeys: [OPS_KEY] }],
  },
};
const IGNITION_JSON = JSON.stringify(IGNITION);
writeFileSync(join(work, 'config.ign'), IGNITION_JSON);

describeVm('first boot from QEMU fw_cfg with an Ignition config (Test 2)', () => {
  // As an Ignition image boots on QEMU: first boot flagged, the platform named on the command line.
  const vm = useVm('fbign', {
    fwCfg: join(work, 'config.ign'),
    append: 'ignition.firstboot ignition.platform.id=qemu',
  });

  it('fw_cfg: opt/com.coreos/config holds the Ignition config byte for byte', async () => {
    const raw = '/sys/firmware/qemu_fw_cfg/by_name/opt/com.coreos/config/raw';
    expect(await vm().check('cat', raw)).toBe(IGNITION_JSON);
    expect((await vm().check('cat', raw.replace(/raw$/, 'size'))).trim()).toBe(String(IGNITION_JSON.length));
  });

  it('applies files, directories, links, units and users at first boot', async () => {
    await vm().sh('systemctl is-system-running --wait', { timeoutMs: 240_000 });
    expect(await vm().check('cat', '/etc/ignited/hello')).toBe('ignited at first boot\n');
    expect((await vm().check('stat', '-c', '%a', '/etc/ignited/hello')).trim()).toBe('600');
    expect((await vm().check('stat', '-c', '%a %F', '/var/lib/ignited')).trim()).toBe('750 directory');
    expect((await vm().check('readlink', '/etc/ignited/link')).trim()).toBe('/etc/ignited/hello');
    await until(vm(), 'systemctl is-active ignited.service', 60_000);
    expect((await vm().check('id', '-nG', 'igops')).split(/\s+/)).toContain('adm');
    const home = (await vm().check('getent', 'passwd', 'igops')).split(':')[5] ?? '';
    expect(await vm().check('cat', `${home}/.ssh/authorized_keys`)).toContain(OPS_KEY);
  }, 300_000);

  it('runs only on first boot: a reboot does not apply it again', async () => {
    await vm().check('sh', '-c', 'echo changed-by-operator > /etc/ignited/hello');
    await vm().run('systemctl', 'reboot');
    await new Promise((res) => setTimeout(res, 5000));
    await until(vm(), 'systemctl is-system-running --wait >/dev/null; cat /etc/ignited/hello', 300_000);
    expect(await vm().check('cat', '/etc/ignited/hello')).toBe('changed-by-operator\n');
  }, 300_000);
});
