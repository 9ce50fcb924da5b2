#!/usr/bin/env node
/** The `metering` command line. Each subcommand lives in sink/commands/<name>.ts. */
import { Command } from 'commander';
import { registerShip } from './commands/ship.js';
import { registerStatus } from './commands/status.js';
import { registerRollup } from './commands/rollup.js';
import { registerUsage } from './commands/usage.js';
import { registerSql } from './commands/sql.js';

const program = new Command()
  .name('metering')
  .description('Ship metering ledgers to object storage and turn them into usage intervals and hourly rollups.')
  .showHelpAfterError()
  .enablePositionalOptions();

// Subcommand registrations (one line each).
registerShip(program);
registerStatus(program);
registerRollup(program);
registerUsage(program);
registerSql(program);

await program.parseAsync(process.argv);
