/**
 * Who this machine is: its machine ID (from /etc/machine-id, as fleet does) and the public IP it
 * announces (config `public_ip`, else the first non-internal IPv4 address).
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { advertisedAddress } from '../api/server.js';
import { FlotillaError } from '../lib/errors.js';
import type { MachineRecord } from '../registry/types.js';
import { VERSION } from '../version.js';
import type { AgentConfig } from './config.js';
import { HOST_PATHS } from '../lib/paths.js';

export function readMachineId(path: string = HOST_PATHS.machineIdFile): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new FlotillaError('E_CONFIG', `machine_id_file: cannot read ${path}: ${(err as Error).message}`, {
      field: 'machine_id_file',
    });
  }
  if (!/^[0-9a-f]{32}$/.test(text)) {
    throw new FlotillaError(
      'E_CONFIG',
      `machine_id_file: ${path} does not hold a 32-hex machine ID (run systemd-machine-id-setup)`,
      {
        field: 'machine_id_file',
      },
    );
  }
  return text;
}

/** The first non-internal IPv4 address, by interface name order; '' when there is none. */
export function detectPublicIp(ifaces = networkInterfaces()): string {
  for (const name of Object.keys(ifaces).sort()) {
    for (const a of ifaces[name] ?? []) {
      if (a.family === 'IPv4' && !a.internal) return a.address;
    }
  }
  return '';
}

/** Every address of this machine (to tell local etcd members from remote ones). */
export function localAddresses(ifaces = networkInterfaces()): string[] {
  return Object.values(ifaces).flatMap((list) => (list ?? []).map((a) => a.address));
}

/** This machine's record as the agent announces it (metadata: the configured keys, until merged). */
export function machineRecord(config: AgentConfig): MachineRecord {
  const publicIP = config.publicIp ?? detectPublicIp();
  const machine: MachineRecord = {
    id: readMachineId(config.machineIdFile),
    publicIP,
    metadata: config.metadata,
    version: VERSION,
  };
  // Peers reach this agent's API here (mutual TLS) for status and journals of units it hosts.
  if (config.apiListen) machine.api = advertisedAddress(config.apiListen, publicIP);
  return machine;
}
