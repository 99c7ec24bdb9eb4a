import { FlotillaError } from '../../lib/errors.js';
import type { Command } from '../command.js';

export const help: Command = {
  name: 'help',
  summary: 'Show a list of commands or help for one command',
  usage: 'help [COMMAND]',
  async run({ prog, args, io }) {
    // Imported lazily: help.ts lists COMMANDS, which includes this command.
    const { COMMANDS } = await import('./index.js');
    const { commandHelp, globalHelp } = await import('../help.js');
    const word = args[0];
    if (word === undefined) {
      io.out(globalHelp(prog));
      return 0;
    }
    const cmd = COMMANDS.find((c) => c.name === word) ?? COMMANDS.filter((c) => c.name.startsWith(word))[0];
    if (!cmd) throw new FlotillaError('E_USAGE', `unknown help topic "${word}"`);
    io.out(commandHelp(prog, cmd));
    return 0;
  },
};
