/** Every CLI command, in the order `help` lists them. */
import type { Command } from '../command.js';
import { help } from './help.js';
import { version } from './version.js';

export const COMMANDS: readonly Command[] = [help, version];
