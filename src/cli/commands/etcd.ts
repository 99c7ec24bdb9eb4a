/**
 * `flotilla etcd add-member NAME PEER_URL`, `etcd remove-member NAME|ID`, `etcd list-members`:
 * etcd's member API with the health guard of src/etcd/members.ts. Endpoints and TLS come from the
 * agent's config (etcd_servers, etcd_cafile, etcd_certfile, etcd_keyfile) or --endpoints.
 * add-member prints the settings the new member starts with, as `etcdctl member add` does.
 */
import { loadConfig } from '../../daemon/config.js';
import { FlotillaError } from '../../lib/errors.js';
import { EtcdMembers, checkChange, describeMember, type EtcdAccess } from '../../etcd/members.js';
import { UsageError, type Command, type Context } from '../command.js';

function access(ctx: Context): EtcdAccess {
  const { config } = loadConfig(
    typeof ctx.flags.config === 'string' ? { configFile: ctx.flags.config, env: ctx.env } : { env: ctx.env },
  );
  const eps =
    typeof ctx.flags.endpoints === 'string' && ctx.flags.endpoints !== ''
      ? ctx.flags.endpoints
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : config.etcdServers;
  if (eps.length === 0)
    throw new FlotillaError(
      'E_CONFIG',
      'no etcd endpoints: give --endpoints=URL[,URL…] or set etcd_servers',
      {
        field: 'etcd_servers',
      },
    );
  return {
    endpoints: eps,
    ...(config.etcdCafile ? { caFile: config.etcdCafile } : {}),
    ...(config.etcdCertfile ? { certFile: config.etcdCertfile } : {}),
    ...(config.etcdKeyfile ? { keyFile: config.etcdKeyfile } : {}),
    timeoutMs: Math.max(1000, Math.round(config.etcdRequestTimeout * 1000)),
  };
}

export const etcd: Command = {
  name: 'etcd',
  summary:
    'etcd membership: add-member NAME PEER_URL, remove-member NAME|ID, list-members (refused on an unhealthy cluster)',
  usage:
    'etcd add-member NAME PEER_URL | etcd remove-member NAME|ID | etcd list-members [--endpoints=URL,...] [--config=PATH]',
  description:
    'add-member refuses unless every member is healthy; remove-member refuses unless every other member\n' +
    'is healthy (so a failed member can be removed). Both name the unhealthy member.',
  flags: {
    endpoints: {
      type: 'string',
      value: 'URLS',
      help: 'etcd client URLs (default: etcd_servers from the config)',
    },
    config: {
      type: 'string',
      value: 'PATH',
      help: 'Agent config file (default /etc/flotilla/flotilla.conf)',
    },
  },
  async run(ctx) {
    const [sub, ...args] = ctx.args;
    const want = (n: number, usage: string) => {
      if (args.length !== n) throw new UsageError(`etcd ${sub}: expected ${usage}`);
    };
    if (sub === 'add-member') want(2, 'NAME PEER_URL');
    else if (sub === 'remove-member') want(1, 'NAME or member ID');
    else if (sub === 'list-members') want(0, 'no arguments');
    else throw new UsageError('etcd: expected add-member, remove-member or list-members');
    const api = new EtcdMembers(access(ctx));
    const { clusterID, members } = await api.list();
    const health = await api.health(members);
    if (sub === 'list-members') {
      for (const m of members) {
        const h = health.get(m.id);
        ctx.io.out(
          `${m.id}\t${m.name || '(unstarted)'}\t${m.peerURLs.join(',')}\t${m.clientURLs.join(',') || '-'}\t${h?.ok ? 'healthy' : `unhealthy: ${h?.why ?? '?'}`}${m.isLearner ? '\tlearner' : ''}\n`,
        );
      }
      return members.every((m) => health.get(m.id)?.ok) ? 0 : 1;
    }
    if (sub === 'add-member') {
      const [name, peer] = args as [string, string];
      checkChange(members, health, { kind: 'add', name, peerURL: peer });
      const r = await api.add(peer);
      const cluster = r.members
        .map((m) => (m.id === r.id ? `${name}=${peer}` : m.name ? `${m.name}=${m.peerURLs[0]}` : undefined))
        .filter((x): x is string => x !== undefined)
        .sort()
        .join(',');
      ctx.io.out(
        `Member ${r.id} added to cluster ${clusterID}\n\n` +
          `ETCD_NAME="${name}"\nETCD_INITIAL_CLUSTER="${cluster}"\n` +
          `ETCD_INITIAL_ADVERTISE_PEER_URLS="${peer}"\nETCD_INITIAL_CLUSTER_STATE="existing"\n`,
      );
      return 0;
    }
    const target = checkChange(members, health, { kind: 'remove', member: args[0]! })!;
    await api.remove(target.id);
    ctx.io.out(`Member ${target.id} removed from cluster ${clusterID} (${describeMember(target)})\n`);
    return 0;
  },
};
