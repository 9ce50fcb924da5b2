/**
 * `@duckdb/node-api`, loaded only when a SQL engine runs: the recorder's users (VM managers on every
 * node) never install a database engine.
 */
export type DuckDbApi = typeof import('@duckdb/node-api');

export const DUCKDB_INSTALL_HINT = 'metering rollup needs @duckdb/node-api: npm install @duckdb/node-api';

let loaded: Promise<DuckDbApi> | undefined;

/** Imports a module, turning "not installed" into the install hint (the specifier is a parameter for tests). */
export async function importOptional<T>(specifier: string, hint: string): Promise<T> {
  try {
    return (await import(specifier)) as T;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') throw new Error(hint, { cause: err });
    throw err;
  }
}

export function loadDuckDb(): Promise<DuckDbApi> {
  loaded ??= importOptional<DuckDbApi>('@duckdb/node-api', DUCKDB_INSTALL_HINT).catch((err: unknown) => {
    loaded = undefined;
    throw err;
  });
  return loaded;
}
