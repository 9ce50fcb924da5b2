import type { Destination } from './destination.js';
import { localDirFromUrl } from './local-dir.js';
import { loadWithOptionalPeer } from '../optional-peer.js';

export interface OpenDestinationOptions {
  /** GCS only: an explicit API endpoint (e.g. a test server); STORAGE_EMULATOR_HOST is honoured too. */
  endpoint?: string;
  /** GCS only: project id, if the credentials do not carry one. */
  projectId?: string;
}

/**
 * The GCS destination module, imported on first use only: @google-cloud/storage is an optional peer
 * (and ~150 ms of imports) that users of local directories never need.
 */
export const loadGcs = (): Promise<typeof import('./gcs.js')> => loadWithOptionalPeer('@google-cloud/storage', 'a gs:// URL (Google Cloud Storage)', () => import('./gcs.js'));

/**
 * Opens a destination from its URL: `gs://bucket/prefix` for Google Cloud Storage; `file:///dir` or
 * a plain path for a local directory. Returns the destination and the object-name prefix inside it.
 */
export async function openDestination(url: string, options: OpenDestinationOptions = {}): Promise<{ destination: Destination; prefix: string }> {
  if (url.startsWith('gs://')) {
    const { gcsFromUrl } = await loadGcs();
    return gcsFromUrl(url, options);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !url.startsWith('file://')) {
    throw new Error(`unsupported destination ${JSON.stringify(url)}: use gs://bucket/prefix, file:///dir or a directory path`);
  }
  return { destination: localDirFromUrl(url), prefix: '' };
}
