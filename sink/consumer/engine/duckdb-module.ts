/**
 * `@duckdb/node-api`, loaded only when a SQL engine runs: the recorder's users (VM managers on every
 * node) never install a database engine.
 */
export type DuckDbApi = typeof import('@duckdb/node-api');

export const DUCKDB_INSTALL_HINT = 'metering rollup needs @duckdb/node-api: npm install @duckdb/node-api';

let loaded: Promise<DuckDbApi> | undefined;

export function loadDuckDb(): Promise<DuckDbApi> {
  loaded ??= import('@duckdb/node-api').catch((err: unknown) => {
    loaded = undefined;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') throw new Error(DUCKDB_INSTALL_HINT, { cause: err });
    throw err;
  });
  return loaded;
}
