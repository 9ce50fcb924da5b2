/**
 * Optional peer dependencies: clients only some users need (Google Cloud Storage for gs:// URLs,
 * DuckDB and BigQuery for the SQL consumer engines). They are not installed with the package, so
 * the module that needs one is imported only when that feature is used, and a missing client turns
 * into one line telling the user what to install.
 */

/** Each optional peer and the version range this package is tested with (package.json peerDependencies). */
export const OPTIONAL_PEERS = {
  '@google-cloud/storage': '^7.22.0',
  '@duckdb/node-api': '1.5.5-r.5',
  '@google-cloud/bigquery': '^8',
} as const;

export type OptionalPeer = keyof typeof OPTIONAL_PEERS;

/** The one-line hint for a missing peer. */
export const installHint = (peer: OptionalPeer): string => `npm install ${peer}@${OPTIONAL_PEERS[peer]}`;

/** A feature was used whose optional client is not installed. */
export class OptionalPeerMissingError extends Error {
  readonly hint: string;
  constructor(
    readonly peer: OptionalPeer,
    feature: string,
  ) {
    super(`${feature} needs the optional package ${peer}, which is not installed`);
    this.name = 'OptionalPeerMissingError';
    this.hint = installHint(peer);
  }
}

/** Did this error come from resolving `peer` itself (not from something inside it, or another module)? */
function isMissing(err: unknown, peer: OptionalPeer): boolean {
  const e = err as { code?: unknown; message?: unknown };
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' && e?.code !== 'MODULE_NOT_FOUND') return false;
  return typeof e.message === 'string' && (e.message.includes(`'${peer}'`) || e.message.includes(`"${peer}"`) || e.message.includes(`${peer}/`));
}

/**
 * Runs `load` (a dynamic import of the module that imports `peer`); if `peer` cannot be found,
 * throws an OptionalPeerMissingError naming the feature and the install command.
 */
export async function loadWithOptionalPeer<T>(peer: OptionalPeer, feature: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (isMissing(err, peer)) throw new OptionalPeerMissingError(peer, feature);
    throw err;
  }
}
