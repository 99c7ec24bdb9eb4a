import { VERSION } from '../../version.js';
import type { Command } from '../command.js';

export const version: Command = {
  name: 'version',
  summary: 'Print the version and exit',
  usage: 'version',
  run({ prog, io }) {
    io.out(`${prog} version ${VERSION}\n`);
    return Promise.resolve(0);
  },
};
