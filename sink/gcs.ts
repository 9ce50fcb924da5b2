/**
 * metering-ledger/sink/gcs: the Google Cloud Storage destination as a library. Needs the optional
 * peer @google-cloud/storage (`npm install @google-cloud/storage@^7.22.0`); `metering-ledger/sink`
 * alone never loads it (openDestination imports it for gs:// URLs only).
 */
export { GcsDestination, GcsRequestError, gcsFromUrl, parseGcsUrl, gcsErrorStatus } from './destinations/gcs.js';
export type { GcsDestinationOptions } from './destinations/gcs.js';
