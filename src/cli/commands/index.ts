/** Every CLI command, in the order `help` lists them. */
import type { Command } from '../command.js';
import { agent } from './agent.js';
import { container } from './container.js';
import { gc } from './gc.js';
import { help } from './help.js';
import { listMachinesCmd, listUnitFilesCmd, listUnitsCmd } from './list.js';
import { proxyCmd } from './proxy.js';
import { listServicesCmd } from './services.js';
import { cat, destroy, load, start, stop, submit, unload } from './units.js';
import { version } from './version.js';

export const COMMANDS: readonly Command[] = [
  agent,
  cat,
  container,
  destroy,
  gc,
  help,
  listMachinesCmd,
  listServicesCmd,
  listUnitFilesCmd,
  listUnitsCmd,
  load,
  proxyCmd,
  start,
  stop,
  submit,
  unload,
  version,
];
