/**
 * `flotilla migrate-from-fleet --etcd-endpoint URL [--prefix /_coreos.com/fleet/] [--dry-run]`:
 * read a fleet cluster's keys through etcd's v2 API (src/migrate/etcd-v2.ts), plan the import
 * against the units flotilla has (src/migrate/fleet-plan.ts: pure), then write it through the local
 * agent's fleet API (PUT units with their desired state, PATCH machine metadata), and say what could
 * not be carried over. Everything is read and checked before the first write.
 */
import { FlotillaError } from '../../lib/errors.js';
import { readFleetKeys } from '../../migrate/etcd-v2.js';
import { planMigration, type DesiredState, type MigrationPlan } from '../../migrate/fleet-plan.js';
import { clientFromGlobals } from '../client.js';
import { UsageError, type Command } from '../command.js';
import { listUnits, unitPath } from '../fleet.js';
import { unitHash } from '../unit-ops.js';

function report(plan: MigrationPlan, dry: boolean, out: (s: string) => void): void {
  for (const u of plan.units) {
    const verb = u.exists ? `desired state set to ${u.desiredState}` : `imported (${u.desiredState})`;
    out(dry ? `Would import unit ${u.name} (${u.desiredState})\n` : `Unit ${u.name} ${verb}\n`);
  }
  for (const n of plan.unchanged) out(`Unit ${n} already in flotilla with the same contents and state\n`);
  for (const m of plan.metadata) {
    const what = m.value === undefined ? `${m.key} removed (fleet's "" mask)` : `${m.key}=${m.value}`;
    out(`${dry ? 'Would set metadata' : 'Metadata'} of machine ${m.machineID.slice(0, 8)}...: ${what}\n`);
  }
  if (plan.notCarried.length) {
    out('Not carried over:\n');
    for (const n of plan.notCarried) out(`  ${n.key}: ${n.why}\n`);
  }
}

export const migrateFromFleet: Command = {
  name: 'migrate-from-fleet',
  summary: "Import a fleet cluster's units, desired states and machine metadata from etcd (v2 API)",
  usage: 'migrate-from-fleet --etcd-endpoint=URL[,URL...] [--prefix=/_coreos.com/fleet/] [--dry-run]',
  description:
    "Reads fleet's keys (job/*/object, job/*/target-state, unit/HASH, machines/*/metadata) through\n" +
    "etcd's v2 keys API and imports them into flotilla through the local agent's API (--endpoint).\n" +
    'Schedules, published states, machine presence and fleet.conf metadata are not carried over;\n' +
    'the command lists each. Malformed fleet keys stop it before anything is written.',
  flags: {
    'etcd-endpoint': {
      type: 'string',
      value: 'URL',
      help: "fleet's etcd (v2 API), e.g. http://10.0.0.1:2379",
    },
    prefix: {
      type: 'string',
      value: 'PREFIX',
      default: '/_coreos.com/fleet/',
      help: "fleet's etcd_key_prefix",
    },
    'dry-run': { type: 'boolean', default: false, help: 'Print what would be imported; write nothing' },
    'etcd-cafile': { type: 'string', value: 'PATH', help: 'CA for an https:// etcd' },
    'etcd-certfile': { type: 'string', value: 'PATH', help: 'Client certificate for etcd' },
    'etcd-keyfile': { type: 'string', value: 'PATH', help: 'Client key for etcd' },
  },
  async run(ctx) {
    if (ctx.args.length)
      throw new UsageError(`migrate-from-fleet takes no arguments (got ${ctx.args.join(' ')})`);
    const ep = ctx.flags['etcd-endpoint'];
    if (typeof ep !== 'string' || ep === '')
      throw new UsageError('migrate-from-fleet: --etcd-endpoint=URL is required');
    const dry = ctx.flags['dry-run'] === true;
    const str = (k: string) =>
      typeof ctx.flags[k] === 'string' && ctx.flags[k] !== '' ? ctx.flags[k] : undefined;
    const caFile = str('etcd-cafile');
    const certFile = str('etcd-certfile');
    const keyFile = str('etcd-keyfile');
    const { keys, endpoint } = await readFleetKeys({
      endpoints: ep
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean),
      prefix: String(ctx.flags.prefix),
      ...(caFile ? { caFile } : {}),
      ...(certFile ? { certFile } : {}),
      ...(keyFile ? { keyFile } : {}),
    });
    ctx.io.out(`Read ${keys.length} keys under ${String(ctx.flags.prefix)} from ${endpoint}\n`);
    const client = await clientFromGlobals(ctx.globals, ctx.env);
    const existing = new Map<string, { hash: string; desiredState: DesiredState }>();
    for (const u of await listUnits(client))
      existing.set(u.name, { hash: unitHash(u), desiredState: u.desiredState ?? 'inactive' });
    const plan = planMigration(keys, existing);
    if (!dry) {
      const done: string[] = [];
      try {
        for (const u of plan.units) {
          const body = u.exists
            ? { name: u.name, desiredState: u.desiredState }
            : { name: u.name, desiredState: u.desiredState, options: u.options };
          await client.request('PUT', unitPath(u.name), body);
          done.push(u.name);
        }
        if (plan.metadata.length)
          await client.request(
            'PATCH',
            '/fleet/v1/machines',
            plan.metadata.map((m) =>
              m.value === undefined
                ? { op: 'remove', path: `/${m.machineID}/metadata/${m.key}` }
                : { op: 'add', path: `/${m.machineID}/metadata/${m.key}`, value: m.value },
            ),
          );
      } catch (err) {
        throw new FlotillaError(
          'E_MIGRATE',
          `import stopped: ${(err as Error).message} (imported before it: ${done.join(', ') || 'none'}; running the command again continues)`,
          { imported: done },
          { cause: err },
        );
      }
    }
    report(plan, dry, ctx.io.out);
    ctx.io.out(
      dry
        ? `Dry run: ${plan.units.length} unit(s) and ${plan.metadata.length} metadata key(s) would be imported; nothing was written\n`
        : `Imported ${plan.units.length} unit(s) and ${plan.metadata.length} metadata key(s); ${plan.notCarried.length} item(s) not carried over\n`,
    );
    return 0;
  },
};
