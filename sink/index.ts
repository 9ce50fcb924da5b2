/**
 * metering-ledger/sink: the shipper, destinations and the central consumer, as a library.
 */
export * from './layout.js';
export * from './destinations/destination.js';
export { LocalDirDestination, localDirFromUrl } from './destinations/local-dir.js';
export { openDestination } from './destinations/open.js';
export type { OpenDestinationOptions } from './destinations/open.js';
// The GCS classes live in metering-ledger/sink/gcs: importing them here would load the optional
// @google-cloud/storage client for every user of the package.
export type { GcsDestination, GcsDestinationOptions } from './destinations/gcs.js';
export { OptionalPeerMissingError, OPTIONAL_PEERS, installHint } from './optional-peer.js';
export type { OptionalPeer } from './optional-peer.js';
export * from './consumer/index.js';
export { parseDuration, parseByteSize } from './duration.js';
export { startShipper, shipOnce } from './shipper/shipper.js';
export type { ShipperOptions, RunningShipper, ShipOnceResult, ShippedEvent } from './shipper/shipper.js';
export { readShipperStatus } from './shipper/status.js';
export type { ShipperStatus, ShipperStatusReport, ShipperCounters, SegmentReport } from './shipper/status.js';
export { ShipperLockedError } from './shipper/lock.js';
export { ShipOnceError } from './shipper/shipper.js';
export { RetryingDestination, StopSignal, StoppedError, GaveUpError, DEFAULT_RETRY } from './destinations/retrying.js';
export type { RetryPolicy, RetryHooks } from './destinations/retrying.js';
export type { QuarantineRecord } from './shipper/quarantine.js';
export { renderRules, renderTemplate, ruleFiles, tableName, DIALECTS } from './sql/render.js';
export type { Dialect, RuleParams, RenderOptions, RenderedStatement } from './sql/render.js';
export { renderSqlScript } from './sql/script.js';
export { bigQueryFoldFunction } from './sql/fold-udf.js';
export { registerMeteringFold } from './consumer/engine/duckdb-fold.js';
export { runBigQueryRollup, parseGsSource, DEFAULT_BQ_JOB_TIMEOUT_MS, BigQuerySetupError, BigQueryTimeoutError } from './consumer/engine/bigquery-engine.js';
export type { BigQueryRollupOptions, BigQueryRollupResult, BigQueryClientOptions } from './consumer/engine/bigquery-engine.js';
export { renderExternalTables } from './sql/bigquery/external-tables.js';
export { stageStatements, dtFilter } from './sql/bigquery/stage.js';
