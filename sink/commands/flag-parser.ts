import { InvalidArgumentError } from 'commander';

/** A flag value that cannot be used: what is wrong with it, and a hint how to write it. */
export class FlagValueError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'FlagValueError';
  }
}

// commander turns a parser's error into its own message and drops everything else; the hint of the
// one value being rejected waits here for the CLI's error report (sink/cli.ts).
let rejectedHint: string | undefined;

/** The hint of the flag value commander just rejected, once. */
export function takeRejectedHint(): string | undefined {
  const hint = rejectedHint;
  rejectedHint = undefined;
  return hint;
}

/** Turns a parser that throws into a commander option parser: the message becomes the CLI's error. */
export const flagParser =
  <T>(parse: (s: string) => T) =>
  (value: string): T => {
    try {
      return parse(value);
    } catch (err) {
      rejectedHint = err instanceof FlagValueError ? err.hint : undefined;
      throw new InvalidArgumentError((err as Error).message);
    }
  };

export { EXIT_LOCKED } from './exit-codes.js';
