/**
 * `@duckdb/node-api`, loaded only when a SQL engine runs: the recorder's users (VM managers on every
 * node) never install a database engine. Missing, it is one line saying what to install.
 */
import { loadWithOptionalPeer } from '../../optional-peer.js';

export type DuckDbApi = typeof import('@duckdb/node-api');

let loaded: Promise<DuckDbApi> | undefined;

export function loadDuckDb(): Promise<DuckDbApi> {
  loaded ??= loadWithOptionalPeer('@duckdb/node-api', 'metering rollup', () => import('@duckdb/node-api')).catch((err: unknown) => {
    loaded = undefined;
    throw err;
  });
  return loaded;
}
