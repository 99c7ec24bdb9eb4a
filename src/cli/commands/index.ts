/**
 * Every CLI command, in the order `help` lists them: name and summary here, the command itself
 * loaded on demand (a test checks that each summary matches its module).
 */
import { findIn, type CommandEntry } from '../command.js';

export const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'agent',
    summary: 'Run the flotilla agent (the daemon: agent, engine and API)',
    load: async () => (await import('./agent.js')).agent,
  },
  {
    name: 'cat',
    summary: 'Output the contents of a submitted unit',
    load: async () => (await import('./units.js')).cat,
  },
  {
    name: 'cloudinit',
    summary:
      'Apply a cloud-config (coreos-cloudinit): users, files, units, etcd and agent settings; -validate checks one',
    load: async () => (await import('./cloudinit.js')).cloudinit,
  },
  {
    name: 'completion',
    summary: 'Print a shell completion script (bash or zsh)',
    load: async () => (await import('./completion.js')).completion,
  },
  {
    name: 'container',
    summary:
      'Container units: run a container under systemd (used by generated services), show a generated unit',
    load: async () => (await import('./container.js')).container,
  },
  {
    name: 'dashboard',
    summary: 'Web dashboard: print a one-time login URL (dashboard login-url)',
    load: async () => (await import('./dashboard.js')).dashboard,
  },
  {
    name: 'destroy',
    summary: 'Destroy one or more units in the cluster',
    load: async () => (await import('./units.js')).destroy,
  },
  {
    name: 'etcd',
    summary:
      'etcd membership: add-member NAME PEER_URL, remove-member NAME|ID, list-members (refused on an unhealthy cluster)',
    load: async () => (await import('./etcd.js')).etcd,
  },
  {
    name: 'fd-forward',
    summary: 'Proxy stdin and stdout to a unix domain socket',
    hidden: true,
    load: async () => (await import('./misc.js')).fdForward,
  },
  {
    name: 'gc',
    summary:
      "Remove this machine's exited flotilla containers and the images flotilla pulled that no unit uses",
    load: async () => (await import('./gc.js')).gc,
  },
  {
    name: 'help',
    summary: 'Show a list of commands or help for one command',
    load: async () => (await import('./help.js')).help,
  },
  {
    name: 'ignition',
    summary: 'Run an Ignition stage (fetch, disks, files) on first boot',
    load: async () => (await import('./ignition.js')).ignition,
  },
  {
    name: 'ignition-validate',
    summary: 'Validate an Ignition config (as ignition-validate): errors and warnings with JSON paths',
    load: async () => (await import('./ignition.js')).ignitionValidate,
  },
  {
    name: 'install',
    summary: 'Install this flotilla tree on the host (systemd units, commands, config) and start the agent',
    load: async () => (await import('./install.js')).install,
  },
  {
    name: 'journal',
    summary: 'Print the journal of a unit in the cluster to stdout',
    load: async () => (await import('./status.js')).journal,
  },
  {
    name: 'list-machines',
    summary: 'Enumerate the current hosts in the cluster',
    load: async () => (await import('./list.js')).listMachinesCmd,
  },
  {
    name: 'list-services',
    summary: 'List the registered services with their endpoints and health',
    load: async () => (await import('./services.js')).listServicesCmd,
  },
  {
    name: 'list-unit-files',
    summary: 'List the units that exist in the cluster',
    load: async () => (await import('./list.js')).listUnitFilesCmd,
  },
  {
    name: 'list-units',
    summary: 'List the current state of units in the cluster',
    load: async () => (await import('./list.js')).listUnitsCmd,
  },
  {
    name: 'load',
    summary: 'Schedule one or more units in the cluster, first submitting them if necessary',
    load: async () => (await import('./units.js')).load,
  },
  {
    name: 'locksmith',
    summary: 'Reboot coordination (locksmithctl): status, lock, unlock, set-max, reboot, send-need-reboot',
    // Full name only: a prefix must not take `lo` (fleetctl's `load`) away.
    hidden: true,
    load: async () => (await import('./locksmith.js')).locksmith,
  },
  {
    name: 'migrate-from-fleet',
    summary: "Import a fleet cluster's units, desired states and machine metadata from etcd (v2 API)",
    load: async () => (await import('./migrate.js')).migrateFromFleet,
  },
  {
    name: 'proxy',
    summary: 'Proxy TCP connections to the live endpoints of services',
    load: async () => (await import('./proxy.js')).proxyCmd,
  },
  {
    name: 'registry',
    summary: 'Back up or restore the embedded registry (registry backup|restore FILE)',
    // Full name only: `r` stays fleetctl's `restart`.
    hidden: true,
    load: async () => (await import('./registry.js')).registry,
  },
  {
    name: 'restart',
    summary: 'Instruct systemd to rolling restart one or more units in the cluster',
    load: async () => (await import('./units.js')).restart,
  },
  {
    name: 'ssh',
    summary: 'Open interactive shell on a machine in the cluster',
    load: async () => (await import('./ssh.js')).ssh,
  },
  {
    name: 'start',
    summary:
      'Instruct systemd to start one or more units in the cluster, first submitting and loading if necessary',
    load: async () => (await import('./units.js')).start,
  },
  {
    name: 'status',
    summary: 'Output the status of one or more units in the cluster',
    load: async () => (await import('./status.js')).status,
  },
  {
    name: 'stop',
    summary: 'Instruct systemd to stop one or more units in the cluster',
    load: async () => (await import('./units.js')).stop,
  },
  {
    name: 'submit',
    summary: 'Upload one or more units to the cluster without starting them',
    load: async () => (await import('./units.js')).submit,
  },
  {
    name: 'uninstall',
    summary: 'Remove a flotilla installed with `flotilla install` (the agent leaves the cluster)',
    // Full name only: a prefix must not take `un` (fleetctl's `unload`) away.
    hidden: true,
    load: async () => (await import('./install.js')).uninstall,
  },
  {
    name: 'unload',
    summary: 'Unschedule one or more units in the cluster',
    load: async () => (await import('./units.js')).unload,
  },
  {
    name: 'update',
    summary: 'A/B OS updates (update_engine_client): status, check, apply, slots, mark-good, rollback',
    load: async () => (await import('./update.js')).update,
  },
  {
    name: 'verify',
    summary: 'DEPRECATED - No longer works',
    hidden: true,
    load: async () => (await import('./misc.js')).verify,
  },
  {
    name: 'version',
    summary: 'Print the version and exit',
    load: async () => (await import('./version.js')).version,
  },
];

/** Resolve a command by exact name or unique prefix (hidden commands only by their full name). */
export function findCommand(word: string): CommandEntry | { ambiguous: string[] } | undefined {
  return findIn(COMMANDS, word);
}
