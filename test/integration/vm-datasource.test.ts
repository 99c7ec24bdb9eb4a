/**
 * The two QEMU datasources first boot reads, as the VM route delivers them (test/env/vm/boot.sh):
 * a config drive (ISO9660 labelled config-2 with openstack/latest/{user_data,meta_data.json}) and
 * QEMU fw_cfg (opt/com.coreos/config, Ignition's qemu platform). One VM gets both; the guest must
 * see the exact bytes where coreos-cloudinit -from-configdrive and Ignition look for them.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { describeVm, useVm } from '../support/vm.js';

const work = mkdtempSync(join(tmpdir(), 'flotilla-vm-ds-'));
const drive = join(work, 'drive');
const userData = `#cloud-config\nhostname: vm-ds\nwrite_files:\n  - path: /etc/ds-test\n    content: "quote ' and \\" and $HOME"\n`;
const metaData = JSON.stringify({ uuid: '0d1f1e0c-5f0a-4bb5-9a1b-9d7a3c8c2f11', hostname: 'vm-ds' });
const ignition = JSON.stringify({
  ignition: { version: '3.3.0' },
  storage: { files: [{ path: '/etc/ign-test', contents: { source: 'data:,from%20fw_cfg' } }] },
});
mkdirSync(join(drive, 'openstack', 'latest'), { recursive: true });
writeFileSync(join(drive, 'openstack', 'latest', 'user_data'), userData);
writeFileSync(join(drive, 'openstack', 'latest', 'meta_data.json'), metaData);
writeFileSync(join(work, 'config.ign'), ignition);

describeVm('QEMU datasources delivered by test/env/vm', () => {
  const vm = useVm('vmds', { configDrive: drive, fwCfg: join(work, 'config.ign') });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('config drive: an iso9660 file system labelled config-2 with user_data and meta_data.json', async () => {
    const dev = (await vm().check('blkid', '-L', 'config-2')).trim();
    expect(dev).toMatch(/^\/dev\/vd[b-z]$/);
    expect((await vm().check('blkid', '-o', 'value', '-s', 'TYPE', dev)).trim()).toBe('iso9660');
    await vm().check('mkdir', '-p', '/mnt/config-2');
    await vm().check('mount', '-o', 'ro', dev, '/mnt/config-2');
    try {
      expect(await vm().check('cat', '/mnt/config-2/openstack/latest/user_data')).toBe(userData);
      expect(await vm().check('cat', '/mnt/config-2/openstack/latest/meta_data.json')).toBe(metaData);
    } finally {
      await vm().run('umount', '/mnt/config-2');
    }
  });

  it('fw_cfg: opt/com.coreos/config holds the Ignition config byte for byte', async () => {
    const raw = '/sys/firmware/qemu_fw_cfg/by_name/opt/com.coreos/config/raw';
    expect(await vm().check('cat', raw)).toBe(ignition);
    expect((await vm().check('cat', raw.replace(/raw$/, 'size'))).trim()).toBe(String(ignition.length));
  });
});
