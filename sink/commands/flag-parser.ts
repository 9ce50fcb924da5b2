import { InvalidArgumentError } from 'commander';

/** Turns a parser that throws into a commander option parser: the message becomes the CLI's error. */
export const flagParser =
  <T>(parse: (s: string) => T) =>
  (value: string): T => {
    try {
      return parse(value);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };

/** Exit code when another process holds the lock (a shipper on the ledger directory, a rollup on the state). */
export const EXIT_LOCKED = 3;
