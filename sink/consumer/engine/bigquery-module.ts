/**
 * `@google-cloud/bigquery`, loaded only when `metering rollup --engine bigquery` runs: nobody else
 * (the recorder's users least of all) installs a warehouse client. Missing, it is one line saying
 * what to install.
 */
import { loadWithOptionalPeer } from '../../optional-peer.js';

export type BigQueryApi = typeof import('@google-cloud/bigquery');

let loaded: Promise<BigQueryApi> | undefined;

export function loadBigQuery(): Promise<BigQueryApi> {
  loaded ??= loadWithOptionalPeer('@google-cloud/bigquery', 'metering rollup --engine bigquery', () => import('@google-cloud/bigquery')).catch((err: unknown) => {
    loaded = undefined;
    throw err;
  });
  return loaded;
}
