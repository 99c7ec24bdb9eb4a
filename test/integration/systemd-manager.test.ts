/**
 * The SystemdManager contract against real systemd 252, from the host over machine m1's bus socket.
 */
import { describeSystemd, machines } from '../support/testbed.js';
import { systemdContract } from '../unit/systemd/contract.js';
import { UNITS_DIR, machineFileExists, openManager } from './systemd-support.js';

const m = machines[0] ?? 'm1';

describeSystemd(`SystemdManager contract on real systemd (${m}, from the host)`, () => {
  systemdContract(async () => {
    const mgr = await openManager(m);
    return {
      mgr,
      foreign: 'dbus.service',
      fileExists: (n) => Promise.resolve(machineFileExists(m, `${UNITS_DIR}/${n}`)),
      close: () => mgr.close(),
    };
  });
});
