/**
 * `flotilla registry backup FILE` / `flotilla registry restore FILE [--force]`: back up and restore
 * the embedded registry (`<data_dir>/registry`) of a single-machine agent. The file format and the
 * rules (validate all, then swap atomically) are in src/registry/embedded/backup.ts.
 *
 * A cluster on etcd is backed up with etcd's own tool (`etcdctl snapshot save`): with etcd_servers
 * set, this command says so instead of touching an unused directory.
 */
import { join } from 'node:path';
import { loadConfig } from '../../daemon/config.js';
import { FlotillaError } from '../../lib/errors.js';
import { backupDataDir, restoreDataDir } from '../../registry/embedded/backup.js';
import { UsageError, type Command } from '../command.js';

export const registry: Command = {
  name: 'registry',
  summary: 'Back up or restore the embedded registry (registry backup|restore FILE)',
  usage: 'registry backup FILE | registry restore FILE [--force] [--data-dir=PATH] [--config=PATH]',
  description:
    'backup writes the embedded registry (keys, revisions, leases) to FILE atomically (mode 0600).\n' +
    'The agent holds the registry while it runs: stop it first (systemctl stop flotilla).\n' +
    'restore checks FILE completely, then replaces <data_dir>/registry (the old one is kept as\n' +
    'registry.pre-restore-TIME). It refuses while the agent runs unless --force is given; then\n' +
    'restart the agent at once. With etcd_servers set, use etcdctl snapshot save/restore instead.',
  hidden: true,
  complete: 'files',
  flags: {
    force: {
      type: 'boolean',
      default: false,
      help: 'restore: replace the registry even while the agent holds it (restart the agent at once)',
    },
    'data-dir': { type: 'string', value: 'PATH', help: "The agent's data_dir (default: from the config)" },
    config: {
      type: 'string',
      value: 'PATH',
      help: 'Agent config file (default /etc/flotilla/flotilla.conf)',
    },
  },
  async run(ctx) {
    const [sub, file, ...rest] = ctx.args;
    if ((sub !== 'backup' && sub !== 'restore') || file === undefined || rest.length > 0)
      throw new UsageError('registry: expected `registry backup FILE` or `registry restore FILE`');
    if (file === '') throw new UsageError('registry: FILE is empty');
    let dataDir: string;
    if (typeof ctx.flags['data-dir'] === 'string') {
      dataDir = ctx.flags['data-dir'];
    } else {
      const { config } = loadConfig(
        typeof ctx.flags.config === 'string'
          ? { configFile: ctx.flags.config, env: ctx.env }
          : { env: ctx.env },
      );
      if (config.etcdServers.length > 0)
        throw new FlotillaError(
          'E_CONFIG',
          `this agent's registry is etcd (etcd_servers=${config.etcdServers.join(',')}): back it up with ` +
            '`ETCDCTL_API=3 etcdctl snapshot save FILE` and restore with `etcdctl snapshot restore` ' +
            '(docs/runbooks/etcd-quorum-loss.md); give --data-dir to back up an embedded registry anyway',
          { field: 'etcd_servers' },
        );
      dataDir = config.dataDir;
    }
    const dir = join(dataDir, 'registry');
    if (ctx.flags.force === true && sub === 'backup')
      throw new UsageError('registry backup: --force is for restore');
    if (sub === 'backup') {
      const s = await backupDataDir(dir, file);
      ctx.io.out(
        `Backed up registry ${dir} at revision ${s.revision} (${s.keys} keys, ${s.leases} leases) to ${s.file}\n`,
      );
      return 0;
    }
    const r = await restoreDataDir(dir, file, { force: ctx.flags.force === true });
    ctx.io.out(
      `Restored registry ${r.dataDir} to revision ${r.revision} (${r.keys} keys, ${r.leases} leases) from ${r.file}\n`,
    );
    if (r.previous) ctx.io.out(`The replaced registry is kept in ${r.previous}\n`);
    if (r.agentRunning)
      ctx.io.err(
        'The agent is running on the replaced registry: restart it now (systemctl restart flotilla)\n',
      );
    return 0;
  },
};
