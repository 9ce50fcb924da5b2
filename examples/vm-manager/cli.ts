#!/usr/bin/env node
/**
 * vm-manager: the example VM/snapshot manager's command line.
 *   node --import tsx examples/vm-manager/cli.ts --help    (or: npm run vm-manager -- --help)
 */
import { VmManagerError } from './manager.js';
import { buildProgram } from './program.js';
import { StoreCorruptError } from './store.js';

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  if (err instanceof VmManagerError || err instanceof StoreCorruptError) {
    console.error(`vm-manager: ${err.message}`);
  } else {
    console.error(`vm-manager: ${err instanceof Error ? (process.env.DEBUG ? err.stack : err.message) : String(err)}`);
  }
  process.exitCode = 1;
}
