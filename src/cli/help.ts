/** fleetctl's help layout: NAME, USAGE, VERSION, COMMANDS (tab separated), OPTIONS, GLOBAL OPTIONS. */
import { VERSION } from '../version.js';
import type { Command, CommandEntry, FlagSpec } from './command.js';
import { GLOBAL_FLAGS } from './globals.js';
import { tabwrite } from './tabwriter.js';

function flagLines(flags: Record<string, FlagSpec>): string {
  const rows = Object.entries(flags)
    .filter(([, f]) => !f.hidden)
    .map(([name, f]) => {
      const dashes = name.length === 1 ? '-' : '--';
      const short = f.short && f.short !== name ? `-${f.short}, ` : '';
      const val = f.type === 'string' ? `=${f.value ?? 'VALUE'}` : '';
      const def =
        f.default !== undefined && f.default !== false && f.default !== '' && f.type === 'string'
          ? ` (default ${String(f.default)})`
          : '';
      return ['', `${short}${dashes}${name}${val}`, `${f.help}${def}`];
    });
  return tabwrite(rows);
}

export function globalHelp(prog: string, commands: readonly CommandEntry[]): string {
  const cmds = tabwrite(commands.filter((c) => !c.hidden).map((c) => ['', c.name, c.summary]));
  return (
    `NAME:\n\t${prog} - fleet-compatible control of a flotilla cluster\n\n` +
    `USAGE:\n\t${prog} [global options] <command> [command options] [arguments...]\n\n` +
    `VERSION:\n\t${VERSION}\n\n` +
    `COMMANDS:\n${cmds}\n` +
    `GLOBAL OPTIONS:\n${flagLines(GLOBAL_FLAGS)}\n` +
    `Global options can also be set as FLEETCTL_<OPTION> or FLOTILLA_<OPTION>, e.g. FLEETCTL_ENDPOINT.\n` +
    `Commands can be abbreviated to a unique prefix, e.g. "${prog} list-mach".\n` +
    `Run "${prog} help <command>" for more details on a specific command.\n`
  );
}

export function commandHelp(prog: string, cmd: Command): string {
  const desc = cmd.description
    ? `DESCRIPTION:\n${cmd.description.replace(/^/gm, '\t').replace(/^\t$/gm, '')}\n\n`
    : '';
  const opts =
    cmd.flags && Object.values(cmd.flags).some((f) => !f.hidden) ? `OPTIONS:\n${flagLines(cmd.flags)}\n` : '';
  return `NAME:\n\t${cmd.name} - ${cmd.summary}\n\nUSAGE:\n\t${prog} ${cmd.usage}\n\n${desc}${opts}`;
}
