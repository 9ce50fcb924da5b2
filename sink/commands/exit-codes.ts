/**
 * The `metering` exit codes, one table for every command (README "Exit codes"):
 * 0 success; 1 a failure while working (destination unreachable, I/O error); 2 bad input refused
 * before anything was written (flags, paths, dates, an unusable state file, a missing optional
 * package); 3 another process holds the lock (a shipper on the ledger directory, a rollup on the state).
 */
export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;
export const EXIT_LOCKED = 3;
