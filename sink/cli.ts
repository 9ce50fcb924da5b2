#!/usr/bin/env node
/** The `metering` command line. Each subcommand lives in sink/commands/<name>.ts. */
import { Command, CommanderError } from 'commander';
import { registerShip } from './commands/ship.js';
import { registerStatus } from './commands/status.js';
import { registerRollup } from './commands/rollup.js';
import { registerUsage } from './commands/usage.js';
import { registerSql } from './commands/sql.js';
import { reportError } from './commands/cli-error.js';
import { EXIT_USAGE } from './commands/exit-codes.js';
import { takeRejectedHint } from './commands/flag-parser.js';
import { PACKAGE_VERSION } from './version.js';

const program = new Command()
  .name('metering')
  .description('Ship metering ledgers to object storage and turn them into usage intervals and hourly rollups.')
  .version(PACKAGE_VERSION, '-V, --version', 'print the version and exit')
  .enablePositionalOptions()
  .addHelpText(
    'after',
    `
Exit codes: 0 success, 1 failure while working, ${EXIT_USAGE} bad input (refused before anything was written),
            3 another process holds the lock. Run \`metering <command> --help\` for a command's flags.`,
  );

// Subcommand registrations (one line each).
registerShip(program);
registerStatus(program);
registerRollup(program);
registerUsage(program);
registerSql(program);

// Bad flags are reported like every other error (a readable line and a hint on a terminal, pino
// JSON otherwise) and exit 2, commander's own wording kept as the message.
for (const cmd of [program, ...program.commands]) {
  if (cmd !== program && cmd.name() !== 'ship') {
    cmd.addHelpText('after', `\nExit codes: 0 success, 1 failure while working, ${EXIT_USAGE} bad input (nothing was written)${cmd.name() === 'status' || cmd.name() === 'sql' ? '' : ', 3 another run holds the lock'}.\nErrors: one line and a hint on a terminal, pino JSON on stderr otherwise (README "Exit codes and errors").`);
  }
  // commander enforces required options but does not say so in --help.
  for (const opt of cmd.options) if (opt.mandatory && !opt.description.startsWith('(required)')) opt.description = `(required) ${opt.description}`;
  cmd.configureOutput({ outputError: () => {} }).exitOverride((err: CommanderError) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(err.exitCode);
    const name = cmd === program ? '' : cmd.name();
    let message = err.message.replace(/^error: /, '');
    let hint = `see \`metering ${name ? `${name} ` : ''}--help\``;
    if (err.code === 'commander.invalidArgument') {
      // "option '--from <time>' argument 'x' is invalid. <why>" reads better as "--from: <why>".
      const m = /^option '(-[^ ',]+)[^']*' argument '.*' is invalid\. ([\s\S]*)$/.exec(message);
      if (m) message = `${m[1]}: ${m[2]}`;
      hint = takeRejectedHint() ?? hint;
    }
    reportError(name, message, { hint, exitCode: EXIT_USAGE });
    process.exit(EXIT_USAGE);
  });
}

await program.parseAsync(process.argv);
