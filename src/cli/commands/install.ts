/**
 * `flotilla install` and `flotilla uninstall`: what the .deb does, from the unpacked release tarball,
 * for hosts without dpkg. Run the tarball's own launcher (./flotilla-VERSION/bin/flotilla install):
 * it copies that tree to PREFIX/lib/flotilla, links the five commands into PREFIX/bin, writes
 * /etc/flotilla/flotilla.conf (the commented default, with --etcd-servers/--metadata set) and
 * flotilla.socket + flotilla.service into /etc/systemd/system, then enables and starts them. All
 * checks come first (src/install/plan.ts), the steps run with an undo log (src/install/apply.ts).
 */
import { fileURLToPath } from 'node:url';
import { applyActions, observeInstall, observeUninstall } from '../../install/apply.js';
import { planInstall, planUninstall, UNIT_NAMES, type Action } from '../../install/plan.js';
import { FlotillaError } from '../../lib/errors.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError, type Command, type Context } from '../command.js';

const CONFIG_FILE = '/etc/flotilla/flotilla.conf';
const UNIT_DIR = '/etc/systemd/system';
const DATA_DIR = '/var/lib/flotilla';

/** The tree this code runs from (flotilla-VERSION/ of the tarball, or an installed tree). */
function ownTree(): string {
  return fileURLToPath(new URL('../../..', import.meta.url)).replace(/\/$/, '');
}

function describe(a: Action): string {
  switch (a.kind) {
    case 'copy-tree':
      return `copy ${a.from} -> ${a.to}`;
    case 'link':
      return `link ${a.path} -> ${a.target}`;
    case 'write':
      return `write ${a.path}`;
    case 'mkdir':
      return `mkdir ${a.path}`;
    case 'remove':
      return `remove ${a.path}`;
    case 'systemctl':
      return `systemctl ${a.argv.join(' ')}`;
  }
}

/** Run a step; an E_INSTALL (or E_CONFIG) refusal is printed with its code, `flotilla install: E_INSTALL: …`. */
async function report(ctx: Context, name: string, fn: () => Promise<void>): Promise<number> {
  try {
    await fn();
    return 0;
  } catch (err) {
    if (err instanceof FlotillaError) {
      ctx.io.err(`${ctx.prog} ${name}: ${err.code}: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
}

export const install: Command = {
  name: 'install',
  summary: 'Install this flotilla tree on the host (systemd units, commands, config) and start the agent',
  usage: 'install [--etcd-servers=URL,...] [--metadata=k=v,...] [--prefix=/usr] [--no-start]',
  description:
    'Run from the unpacked release tarball (./flotilla-VERSION/bin/flotilla install). Refuses, before\n' +
    'changing anything, on a host without systemd as PID 1, without root, with a Node that is too old\n' +
    '(when the tree has no bundled runtime), with invalid flags, or where a file it would write belongs\n' +
    'to someone else. A step that fails undoes every earlier one.',
  flags: {
    'etcd-servers': {
      type: 'string',
      value: 'URL,...',
      help: 'etcd v3 endpoints (default: the embedded registry)',
    },
    metadata: { type: 'string', value: 'k=v,...', help: 'machine metadata for MachineMetadata= constraints' },
    prefix: {
      type: 'string',
      value: 'DIR',
      default: '/usr',
      help: 'install the tree in DIR/lib/flotilla, links in DIR/bin',
    },
    'no-start': { type: 'boolean', help: 'enable the units but do not start the agent now' },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new UsageError(`install takes no arguments, got ${ctx.args.join(' ')}`);
    return report(ctx, 'install', async () => {
      const prefix = typeof ctx.flags.prefix === 'string' ? ctx.flags.prefix : '/usr';
      const source = ownTree();
      const observed = observeInstall({ source, prefix, unitDir: UNIT_DIR, configFile: CONFIG_FILE });
      const units: Record<string, string> = {};
      for (const u of UNIT_NAMES) {
        if (observed.sourceHas.has(`systemd/${u}`))
          units[u] = readFileSync(join(source, 'systemd', u), 'utf8');
      }
      const plan = planInstall(
        {
          prefix,
          ...(typeof ctx.flags['etcd-servers'] === 'string'
            ? { etcdServers: ctx.flags['etcd-servers'] }
            : {}),
          ...(typeof ctx.flags.metadata === 'string' ? { metadata: ctx.flags.metadata } : {}),
          start: ctx.flags['no-start'] !== true,
          unitDir: UNIT_DIR,
          configFile: CONFIG_FILE,
          dataDir: DATA_DIR,
        },
        observed,
        units,
      );
      await applyActions(plan.actions, {
        step: (a) => ctx.io.out(`${describe(a)}  (${a.reason})\n`),
        undone: (w) => ctx.io.err(`undo: ${w}\n`),
      });
      ctx.io.out(`flotilla installed in ${plan.manifest.tree}\n`);
    });
  },
};

export const uninstall: Command = {
  name: 'uninstall',
  summary: 'Remove a flotilla installed with `flotilla install` (the agent leaves the cluster)',
  usage: 'uninstall [--purge]',
  hidden: true,
  description:
    'Stops the agent (a real leave: its units stop, the machine leaves the cluster at once), disables\n' +
    'and removes the units, the command links and the tree. --purge also removes /var/lib/flotilla and\n' +
    '/etc/flotilla.',
  flags: { purge: { type: 'boolean', help: 'also remove the data and the configuration' } },
  async run(ctx) {
    if (ctx.args.length > 0) throw new UsageError(`uninstall takes no arguments, got ${ctx.args.join(' ')}`);
    return report(ctx, 'uninstall', async () => {
      const actions = planUninstall(
        { purge: ctx.flags.purge === true, configDir: '/etc/flotilla', dataDir: DATA_DIR },
        observeUninstall(ownTree()),
      );
      await applyActions(actions, {
        step: (a) => ctx.io.out(`${describe(a)}  (${a.reason})\n`),
        undone: (w) => ctx.io.err(`undo: ${w}\n`),
      });
      ctx.io.out('flotilla uninstalled\n');
    });
  },
};
