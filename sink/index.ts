/**
 * metering-ledger/sink: the shipper, destinations and the central consumer, as a library.
 */
export * from './layout.js';
export * from './destinations/destination.js';
export { LocalDirDestination, localDirFromUrl } from './destinations/local-dir.js';
export { openDestination } from './destinations/open.js';
export type { OpenDestinationOptions } from './destinations/open.js';
export { GcsDestination, GcsRequestError, gcsFromUrl, parseGcsUrl, gcsErrorStatus } from './destinations/gcs.js';
export type { GcsDestinationOptions } from './destinations/gcs.js';
export * from './consumer/index.js';
