/**
 * Runs the CLI from source as its own process (node --import tsx test/unit/cli/cli-entry.ts ARGS),
 * like bin/flotilla runs dist/: for tests that need real signals, stdio or a shell.
 */
import { main } from '../../../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
