import { UsageError, type Command } from '../command.js';

export const help: Command = {
  name: 'help',
  summary: 'Show a list of commands or help for one command',
  usage: 'help [COMMAND]',
  async run({ prog, args, io }) {
    // Imported lazily: help.ts lists COMMANDS, which includes this command.
    const { findCommand } = await import('./index.js');
    const { commandHelp, globalHelp } = await import('../help.js');
    const word = args[0];
    if (word === undefined) {
      io.out(globalHelp(prog));
      return 0;
    }
    const found = findCommand(word);
    if (!found || 'ambiguous' in found) throw new UsageError(`unknown help topic ${JSON.stringify(word)}`);
    io.out(commandHelp(prog, await found.load()));
    return 0;
  },
};
