/**
 * The QEMU VM route of test/env (test/env/vm): a Debian VM built from Debian's packages boots under
 * TCG with the project shared at /project, reaches a running systemd, and runs node and the
 * project's CLI.
 */
import { expect, it } from 'vitest';
import { describeVm, useVm } from '../support/vm.js';

describeVm('QEMU VM (test/env/vm)', () => {
  const vm = useVm('vmboot');

  it('boots to a running (or degraded) systemd', async () => {
    const r = await vm().sh('systemctl is-system-running --wait', { timeoutMs: 180_000 });
    const state = r.stdout.trim();
    if (state === 'degraded') {
      console.warn(`[vm-boot] degraded: ${(await vm().sh('systemctl --failed --no-legend')).stdout}`);
    }
    expect(['running', 'degraded']).toContain(state);
    expect((await vm().check('cat', '/proc/1/comm')).trim()).toBe('systemd');
    // each VM has its own machine-id, made at first boot from the image's empty one
    expect((await vm().check('cat', '/etc/machine-id')).trim()).toMatch(/^[0-9a-f]{32}$/);
  });

  it('runs node and the project built in dist/', async () => {
    expect((await vm().check('node', '--version')).trim()).toBe(process.version);
    expect((await vm().check('flotilla', 'version')).trim()).toMatch(/^flotilla version \d+\.\d+/);
    expect((await vm().check('findmnt', '-no', 'FSTYPE,OPTIONS', '/project')).trim()).toMatch(/^9p\s+ro,/);
  });

  it('has the kernel pieces first boot reads: qemu_fw_cfg sysfs and iso9660', async () => {
    expect((await vm().check('ls', '/sys/firmware/qemu_fw_cfg/by_name')).split('\n')).toContain('etc');
    const r = await vm().run('modprobe', '-n', '-v', 'isofs');
    expect(r.code).toBe(0);
  });

  it('is on QEMU user networking with no route out (restrict=on)', async () => {
    expect(await vm().check('ip', '-4', '-o', 'addr', 'show')).toMatch(/inet 10\.0\.2\.15\/24/);
    expect((await vm().check('ip', '-4', 'route', 'show', 'default')).trim()).toBe('');
  });
});
