/** Where shipped objects go. Small on purpose: a destination only stores bytes under names. */

export interface PutOptions {
  contentType?: string;
  /** e.g. "gzip" when the body is gzip-compressed. */
  contentEncoding?: string;
  /** Stored with the object: byte range, line count, checksum, source. String values only. */
  metadata?: Record<string, string>;
}

export interface ObjectInfo {
  name: string;
  size: number;
  metadata: Record<string, string>;
  /**
   * When the object was last written, by the destination's own clock (GCS `updated`, a file's
   * mtime), epoch ms. The consumer trusts it over any time a node writes into an object.
   */
  updated?: number;
}

export type PutIfAbsentResult = 'created' | 'exists';

export interface Destination {
  /** A URL naming the destination, without credentials (for logs and status). */
  readonly description: string;
  /**
   * Create-only upload: stores the object unless one of that name exists (GCS `ifGenerationMatch: 0`,
   * link-without-overwrite on a directory). Never replaces an existing object.
   */
  putIfAbsent(name: string, body: Buffer, options?: PutOptions): Promise<PutIfAbsentResult>;
  /** Upload that replaces (for small mutable objects like node progress); atomic for readers. */
  put(name: string, body: Buffer, options?: PutOptions): Promise<void>;
  /** The object's bytes as stored, or undefined if it does not exist. */
  get(name: string): Promise<Buffer | undefined>;
  /** The object's size and metadata, or undefined if it does not exist. */
  head(name: string): Promise<ObjectInfo | undefined>;
  /** Objects whose name starts with `prefix`, in name order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  delete(name: string): Promise<void>;
  /**
   * The same destination with the client library's own retries off, for a caller that retries
   * itself (the shipper's RetryingDestination): otherwise every failure is retried inside ours.
   * Destinations without client retries need not implement it.
   */
  withoutClientRetries?(): Destination;
}

/**
 * A failure retrying cannot fix (403, a missing bucket, a bad path). `hint` tells the operator what
 * to change; the daemon logs it and keeps retrying slowly instead of giving up its position;
 * `ship --once` gives up at once.
 */
export class PermanentDestinationError extends Error {
  constructor(
    message: string,
    readonly hint: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'PermanentDestinationError';
  }
}
