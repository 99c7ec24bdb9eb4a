/**
 * `flotilla gc`: on this machine, remove what flotilla's container units left behind, and nothing
 * else:
 *   - containers that carry flotilla's labels for THIS machine (flotilla.unit, flotilla.machine =
 *     this machine ID) and are exited or dead (or created and never started for over a minute);
 *     running ones are kept;
 *   - images that flotilla pulled (the agent's ledger `<data_dir>/docker-images.json`: only images
 *     that were absent when it pulled them) and that no submitted unit's [Container] Image= names
 *     and no remaining container uses. Images flotilla did not pull are never touched.
 * Reads the agent's configuration (docker_socket, data_dir, machine_id_file; flags override) and
 * the cluster's units through the API. Without the API the image part is skipped (exit 1).
 */
import { writeAtomic } from '../../lib/fs.js';
import { join } from 'node:path';
import { loadConfig } from '../../daemon/config.js';
import { readMachineId } from '../../daemon/identity.js';
import { FlotillaError } from '../../lib/errors.js';
import { UnitFile } from '../../unit/index.js';
import { clientFromGlobals } from '../client.js';
import type { Command } from '../command.js';
import { listUnits } from '../fleet.js';

export const gc: Command = {
  name: 'gc',
  summary:
    "Remove this machine's exited flotilla containers and the images flotilla pulled that no unit uses",
  usage: 'gc [--dry-run] [--docker-socket=PATH] [--data-dir=PATH] [--config=PATH]',
  flags: {
    'dry-run': { type: 'boolean', default: false, help: 'Only print what would be removed' },
    'docker-socket': {
      type: 'string',
      value: 'PATH',
      help: 'Docker socket (default: the agent’s docker_socket)',
    },
    'data-dir': {
      type: 'string',
      value: 'PATH',
      help: 'The agent’s data_dir (holds the ledger of pulled images)',
    },
    config: {
      type: 'string',
      value: 'PATH',
      help: 'Agent config file (default /etc/flotilla/flotilla.conf)',
    },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new FlotillaError('E_USAGE', 'gc takes no arguments');
    const flags: Record<string, string> = {};
    if (typeof ctx.flags['docker-socket'] === 'string') flags['docker-socket'] = ctx.flags['docker-socket'];
    if (typeof ctx.flags['data-dir'] === 'string') flags['data-dir'] = ctx.flags['data-dir'];
    const { config } = loadConfig({
      ...(typeof ctx.flags.config === 'string' ? { configFile: ctx.flags.config } : {}),
      flags,
    });
    const dry = ctx.flags['dry-run'] === true;
    const verb = dry ? 'Would remove' : 'Removed';
    const machineID = readMachineId(config.machineIdFile);
    const { DockerodeEngine } = await import('../../docker/dockerode.js');
    const { LABEL_MACHINE, LABEL_UNIT } = await import('../../docker/port.js');
    const { readPulledImages } = await import('../../container/pulls.js');
    const { normalizeImageReference } = await import('../../docker/reference.js');
    const { isContainerUnit, parseContainerSection } = await import('../../container/spec.js');
    const docker = new DockerodeEngine({ socketPath: config.dockerSocket });
    let rc = 0;
    try {
      await docker.ping();
      // Containers: ours (this machine) and not running.
      const now = Date.now() / 1000;
      const ours = await docker.listContainers({
        labels: [LABEL_UNIT, `${LABEL_MACHINE}=${machineID}`],
        all: true,
      });
      for (const c of ours) {
        const old =
          c.state === 'exited' || c.state === 'dead' || (c.state === 'created' && now - c.created > 60);
        if (!old) continue;
        if (!dry) {
          try {
            await docker.removeContainer(c.id);
          } catch (err) {
            ctx.io.err(`Kept container ${c.name}: ${(err as Error).message}\n`);
            rc = 1;
            continue;
          }
        }
        ctx.io.out(`${verb} container ${c.name} (unit ${c.labels[LABEL_UNIT]}, ${c.status || c.state})\n`);
      }

      // Images: only those flotilla pulled, and only when no unit names them.
      const ledger = readPulledImages(config.dataDir);
      const pulled = Object.keys(ledger);
      if (pulled.length === 0) return rc;
      let used: Map<string, string[]>;
      try {
        used = new Map();
        for (const u of await listUnits(await clientFromGlobals(ctx.globals, ctx.env))) {
          const file = UnitFile.fromOptions(u.options ?? []);
          if (!isContainerUnit(file)) continue;
          try {
            const image = normalizeImageReference(parseContainerSection(u.name, file).image);
            used.set(image, [...(used.get(image) ?? []), u.name]);
          } catch {
            // an invalid unit names no image
          }
        }
      } catch (err) {
        ctx.io.err(`Images skipped: cannot list the cluster's units (${(err as Error).message})\n`);
        return 1;
      }
      // A container created from the reference keeps it; otherwise dockerd decides: it untags a
      // reference that shares its image with others, and refuses (409) to delete an image in use.
      const remaining = await docker.listContainers({ all: true });
      const byContainers = new Set(remaining.map((c) => normalizeImageReference(c.image)));
      const images = await docker.listImages();
      let changed = false;
      for (const ref of pulled) {
        const users = used.get(ref);
        if (users) {
          ctx.io.out(`Kept image ${ref}: used by ${users.join(', ')}\n`);
          continue;
        }
        const img = images.find((i) => i.repoTags.includes(ref) || i.repoDigests.includes(ref));
        if (!img) {
          delete ledger[ref]; // removed by someone else
          changed = true;
          continue;
        }
        if (byContainers.has(ref)) {
          ctx.io.out(`Kept image ${ref}: a container uses it\n`);
          continue;
        }
        if (!dry) {
          try {
            await docker.removeImage(ref);
          } catch (err) {
            ctx.io.err(`Kept image ${ref}: ${(err as Error).message}\n`);
            rc = 1;
            continue;
          }
          delete ledger[ref];
          changed = true;
        }
        ctx.io.out(`${verb} image ${ref} (${img.id.replace(/^sha256:/, '').slice(0, 12)})\n`);
      }
      if (changed && !dry) {
        const path = join(config.dataDir, 'docker-images.json');
        writeAtomic(path, `${JSON.stringify(ledger, null, 2)}\n`, { mode: 0o644 });
      }
      return rc;
    } finally {
      docker.close();
    }
  },
};
