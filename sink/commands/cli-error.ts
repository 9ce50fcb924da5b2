/** How every `metering` command refuses bad input and reports a failure: one style, one exit-code table. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliLogger } from '../shipper/cli-logger.js';
import { OptionalPeerMissingError } from '../optional-peer.js';
import { EXIT_ERROR, EXIT_USAGE } from './exit-codes.js';

/** Bad input, found before anything was written: exit 2, the message and a hint. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Prints an error the way the CLI prints everything: on a terminal `metering <command>: <message>`
 * and a `hint:` line; otherwise one pino JSON line (level 50, `msg`, `hint`, `exit_code`).
 */
export function reportError(command: string, message: string, fields: { hint?: string | undefined; exitCode: number; [k: string]: unknown }): void {
  const { exitCode, hint, ...rest } = fields;
  // The logger names the commands' own loggers use, so one command's records share one `name`.
  const name = command === '' ? 'metering' : command === 'ship' ? 'metering-shipper' : `metering-${command}`;
  cliLogger(name, { label: command ? `metering ${command}` : 'metering' }).error({ ...rest, ...(hint ? { hint } : {}), exit_code: exitCode }, message);
}

/** Reports `err` for `command` and returns its exit code (UsageError and missing peers: 2; anything else: 1). */
export function errorExit(command: string, err: unknown, fallbackHint?: string): number {
  if (err instanceof UsageError) {
    reportError(command, err.message, { hint: err.hint ?? fallbackHint, exitCode: EXIT_USAGE });
    return EXIT_USAGE;
  }
  if (err instanceof OptionalPeerMissingError) {
    reportError(command, err.message, { hint: err.hint, exitCode: EXIT_USAGE });
    return EXIT_USAGE;
  }
  reportError(command, (err as Error)?.message ?? String(err), { hint: fallbackHint, exitCode: EXIT_ERROR });
  return EXIT_ERROR;
}

/** A local path from a flag value: `file:///dir` or a plain path; undefined for other URLs (gs://). */
export function localPath(value: string): string | undefined {
  if (value.startsWith('file://')) return fileURLToPath(value);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return undefined;
  return path.resolve(value);
}

type Kind = 'directory' | 'file' | 'missing';
function kindOf(p: string): Kind {
  try {
    return fs.statSync(p).isDirectory() ? 'directory' : 'file';
  } catch {
    return 'missing';
  }
}

/** A flag that names a directory: refuses a file (and, if `mustExist`, a missing path). */
export function requireDirectory(flag: string, value: string, p: string, options: { mustExist: boolean; hint: string }): void {
  const kind = kindOf(p);
  if (kind === 'file') throw new UsageError(`${flag} ${value} is a file, not a directory`, options.hint);
  if (kind === 'missing' && options.mustExist) throw new UsageError(`${flag} ${value} does not exist`, options.hint);
}

/** A flag that names a file to write: refuses a directory and a missing parent directory. */
export function requireWritableFile(flag: string, value: string, options: { parentMayBeMissing?: boolean } = {}): void {
  const p = path.resolve(value);
  if (kindOf(p) === 'directory') throw new UsageError(`${flag} ${value} is a directory, not a file`, `name a file, e.g. ${path.join(value, 'out')}`);
  const parent = kindOf(path.dirname(p));
  if (parent === 'file') throw new UsageError(`${flag} ${value}: ${path.dirname(value)} is a file, not a directory`);
  if (parent === 'missing' && !options.parentMayBeMissing) throw new UsageError(`${flag} ${value}: directory ${path.dirname(value)} does not exist`, 'create it first, or pick a path in an existing directory');
}

/** --metrics-file: node_exporter's textfile collector reads only *.prom files, from a directory that exists. */
export function validateMetricsFile(file: string): void {
  if (!file.endsWith('.prom')) throw new UsageError(`--metrics-file ${file} does not end in .prom`, "node_exporter's textfile collector reads only *.prom files, e.g. /var/lib/node_exporter/textfile/metering.prom");
  requireWritableFile('--metrics-file', file);
}
