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

export { EXIT_LOCKED } from './exit-codes.js';
