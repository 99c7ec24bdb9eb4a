/**
 * `flotilla container run|cleanup SPEC`: the main process (and ExecStopPost) of a generated
 * container service (see src/container/runner.ts; the generated unit calls the same code through
 * dist/container/runner-main.js, which skips loading the CLI). `flotilla container cat UNIT` prints the
 * service the agent generates for a container unit (also `flotilla cat --generated UNIT`).
 *
 * Also here, for the unit commands: `generatedUnitText` (cat --generated) and `pullWatcher` (the
 * progress line of a blocking `flotilla start` while images are pulled, and its fast failure).
 */
import { DEFAULTS, loadConfig } from '../../daemon/config.js';
import type { ApiUnitState } from '../../api/fleet-v1.js';
import { FlotillaError } from '../../lib/errors.js';
import type { PullStateInfo } from '../../registry/types.js';
import { UnitFile, mangleUnitName } from '../../unit/index.js';
import { clientFromGlobals, type ApiClient } from '../client.js';
import type { Command, Context } from '../command.js';
import { getUnit, listStates } from '../fleet.js';

/** The generated service for a container unit, as the agent on this installation would write it. */
export async function generatedUnitText(unit: UnitFile, name: string): Promise<string> {
  const { isContainerUnit, parseContainerSection } = await import('../../container/spec.js');
  if (!isContainerUnit(unit)) return unit.serialize();
  const { generateContainerService, safeFileName } = await import('../../container/generate.js');
  const { defaultRunner } = await import('../../container/units.js');
  let dir = DEFAULTS.containersDirectory;
  try {
    dir = loadConfig().config.containersDirectory;
  } catch {
    // an unreadable agent config: show the default location
  }
  const spec = parseContainerSection(name, unit);
  return generateContainerService(name, unit, spec, {
    ...defaultRunner(),
    specPath: `${dir.replace(/\/+$/, '')}/${safeFileName(name)}.json`,
  }).serialize();
}

export const container: Command = {
  name: 'container',
  summary:
    'Container units: run a container under systemd (used by generated services), show a generated unit',
  usage: 'container run SPEC | container cleanup SPEC | container cat UNIT',
  async run(ctx) {
    const [verb, arg, ...rest] = ctx.args;
    if (!verb || !arg || rest.length > 0)
      throw new FlotillaError(
        'E_USAGE',
        'usage: container run SPEC | container cleanup SPEC | container cat UNIT',
      );
    if (verb === 'cat') {
      const name = mangleUnitName(arg);
      const u = await getUnit(await clientFromGlobals(ctx.globals, ctx.env), name);
      if (!u) throw new FlotillaError('E_NOT_FOUND', `Unit ${name} not found`);
      ctx.io.out(await generatedUnitText(UnitFile.fromOptions(u.options ?? []), name));
      return 0;
    }
    if (verb !== 'run' && verb !== 'cleanup')
      throw new FlotillaError(
        'E_USAGE',
        `container: unknown subcommand ${JSON.stringify(verb)} (run, cleanup, cat)`,
      );
    const { runnerMain } = await import('../../container/runner-main.js');
    const code = await runnerMain(verb, arg);
    // dockerode keeps sockets open; the runner's exit code is the service's result.
    await new Promise<void>((r) => process.stdout.write('', () => r()));
    process.exit(code);
  },
};

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** One progress line: `Pulling busybox:latest for web.service [=======>     ] 12.0/45.1 MiB 3/5 layers`. */
export function progressLine(unit: string, p: PullStateInfo, width = 24): string {
  const frac = p.total > 0 ? Math.min(1, p.current / p.total) : 0;
  const filled = Math.round(frac * width);
  const bar = `${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(width - filled)}`;
  const size = p.total > 0 ? ` ${bytes(p.current)}/${bytes(p.total)}` : '';
  const layers = p.layers > 0 ? ` ${p.layersDone}/${p.layers} layers` : '';
  return `Pulling ${p.image} for ${unit} [${bar}]${size}${layers}`;
}

/**
 * For a blocking `start`: called on each poll with the unit states of the units waited for. Draws
 * pull progress (on a terminal, one line rewritten in place; elsewhere one line when a pull starts)
 * and returns the units whose container side failed (reason), so the wait ends at once.
 */
export function pullWatcher(ctx: Context, client: ApiClient, names: readonly string[]) {
  const tty = Boolean((process.stderr as { isTTY?: boolean }).isTTY);
  const announced = new Set<string>();
  const recovered = new Set<string>();
  const started = Date.now();
  let drawn = false;
  const clear = () => {
    if (drawn) ctx.io.err('\r\x1b[2K');
    drawn = false;
  };
  return {
    async poll(): Promise<{ name: string; why: string }[]> {
      let states: ApiUnitState[];
      try {
        states = await listStates(client);
      } catch {
        return [];
      }
      const failed: { name: string; why: string }[] = [];
      const lines: string[] = [];
      for (const s of states) {
        if (!names.includes(s.name)) continue;
        const rec = s as ApiUnitState & { reason?: string; pull?: PullStateInfo };
        if (s.systemdSubState === 'pulling' && rec.pull) {
          if (tty) lines.push(progressLine(s.name, rec.pull));
          else if (!announced.has(s.name)) {
            announced.add(s.name);
            ctx.io.err(`Pulling ${rec.pull.image} for ${s.name}\n`);
          }
        } else if (s.systemdActiveState === 'failed' && rec.reason) {
          // A failure published before this start may linger until the agent acts on it.
          if (recovered.has(s.name) || Date.now() - started >= 1500)
            failed.push({ name: s.name, why: `unit ${s.name} failed: ${rec.reason}` });
        }
        if (s.systemdActiveState !== 'failed') recovered.add(s.name);
      }
      clear();
      if (lines.length > 0) {
        ctx.io.err(lines.join(' | '));
        drawn = true;
      }
      return failed;
    },
    done(): void {
      clear();
    },
  };
}
