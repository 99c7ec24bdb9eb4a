import { findIn, UsageError, type Command } from '../command.js';
import { commandHelp, globalHelp } from '../help.js';

export const help: Command = {
  name: 'help',
  summary: 'Show a list of commands or help for one command',
  usage: 'help [COMMAND]',
  async run({ prog, args, io, commands }) {
    const word = args[0];
    if (word === undefined) {
      io.out(globalHelp(prog, commands));
      return 0;
    }
    const found = findIn(commands, word);
    if (!found || 'ambiguous' in found) throw new UsageError(`unknown help topic ${JSON.stringify(word)}`);
    io.out(commandHelp(prog, await found.load()));
    return 0;
  },
};
