/**
 * Builds a local bucket directory the way the shipper fills one: ledger objects named by
 * `objectName` (segment + byte range, optionally gzip), quarantine objects, node progress objects.
 * Entries are built with explicit writer/seq/time so scenarios can say exactly what happened.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { KINDS, REASONS, serializeEntry, ulid, type Kind, type LedgerEntry, type Reason } from 'metering-ledger';
import { LocalDirDestination, nodeProgressName, objectName, type NodeProgress } from 'metering-ledger/sink';

export const GiB = 1024 ** 3;
export const T0 = Date.UTC(2026, 10, 1, 0, 0, 0); // 2026-11-01T00:00:00Z
export const MIN = 60_000;
export const HOUR = 3_600_000;
export const at = (ms: number): string => new Date(ms).toISOString();

const DEFAULT_REASON: Record<string, Reason> = { start: REASONS.BOOT, stop: REASONS.STOP_USER, running: REASONS.BASELINE };

/** One recorder instance: numbers its entries 1, 2, 3... */
export class TestWriter {
  seq = 0;
  constructor(
    readonly node: string,
    readonly writer: string,
  ) {}

  /** An entry of `kind` for resource `id` at epoch ms `t`. */
  entry(kind: Kind, id: string, t: number, opts: { cpu?: number; mem?: number; storage?: number; hypervisor?: string; reason?: Reason; seq?: number } = {}): LedgerEntry {
    const phase = kind.slice(kind.lastIndexOf('.') + 1);
    const snap = kind.startsWith('snap.');
    const seq = opts.seq ?? ++this.seq;
    return {
      v: 1,
      id: ulid(t),
      node: this.node,
      writer: this.writer,
      seq,
      kind,
      ...(snap ? { snapshot_id: id } : { vm_id: id }),
      reason: opts.reason ?? DEFAULT_REASON[phase]!,
      ...(opts.hypervisor === undefined ? { hypervisor: 'cloud-hypervisor' } : opts.hypervisor === '' ? {} : { hypervisor: opts.hypervisor }),
      shape: { cpu: opts.cpu ?? 2, mem_bytes: opts.mem ?? 4 * GiB, storage_bytes: opts.storage ?? 20 * GiB },
      emitted_at: at(t),
    };
  }

  start(id: string, t: number, opts = {}): LedgerEntry {
    return this.entry(KINDS.VM_COMPUTE_START, id, t, opts);
  }
  stop(id: string, t: number, opts = {}): LedgerEntry {
    return this.entry(KINDS.VM_COMPUTE_STOP, id, t, opts);
  }
  running(id: string, t: number, opts = {}): LedgerEntry {
    return this.entry(KINDS.VM_COMPUTE_RUNNING, id, t, opts);
  }
}

export class TestBucket {
  readonly dest: LocalDirDestination;
  private readonly offsets = new Map<string, number>();
  private segCounter = 0;

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
    this.dest = new LocalDirDestination(dir);
  }

  /** A fresh segment name for a node (names sort by creation time). */
  segment(t = T0): string {
    const iso = new Date(t).toISOString();
    const stamp = iso.slice(0, 10).replaceAll('-', '') + 'T' + iso.slice(11, 23).replaceAll(':', '').replace('.', '') + 'Z';
    return `ledger-${stamp}-seg${String(++this.segCounter).padStart(5, '0')}.jsonl`;
  }

  /** Uploads raw ledger bytes as the next byte range of `segment`. Returns the object name. */
  async putBytes(node: string, segment: string, bytes: Buffer, opts: { gzip?: boolean; cls?: 'ledger' | 'quarantine' } = {}): Promise<string> {
    const key = `${opts.cls ?? 'ledger'}/${node}/${segment}`;
    const start = this.offsets.get(key) ?? 0;
    const end = start + bytes.length;
    this.offsets.set(key, end);
    const name = objectName('', opts.cls ?? 'ledger', node, segment, start, end, opts.gzip ?? false);
    const body = opts.gzip ? gzipSync(bytes) : bytes;
    await this.dest.putIfAbsent(name, body, { contentType: 'application/x-ndjson', ...(opts.gzip ? { contentEncoding: 'gzip' } : {}) });
    return name;
  }

  /**
   * Uploads entries as one object of a new segment of their node (all entries must share a node),
   * or of `opts.node`: another node's shipper uploading them (a moved disk, a copied ledger).
   */
  async put(entries: LedgerEntry[], opts: { gzip?: boolean; segment?: string; node?: string } = {}): Promise<string> {
    const node = opts.node ?? entries[0]!.node;
    const text = entries.map((e) => serializeEntry(e) + '\n').join('');
    return this.putBytes(node, opts.segment ?? this.segment(), Buffer.from(text), opts);
  }

  /**
   * Writes a node's progress object as its shipper would at `reportedAt` (the node's clock). The
   * file's mtime, which the consumer trusts, is set to `writtenAt` (default: `reportedAt`, a node
   * whose clock is right): pass another value to model a node whose clock is off.
   */
  async progress(node: string, completeThrough: number, reportedAt: number, writers: Record<string, number> = {}, opts: { writtenAt?: number } = {}): Promise<void> {
    const p: NodeProgress = {
      v: 1,
      node,
      reported_at: at(reportedAt),
      complete_through: at(completeThrough),
      backlog_bytes: 0,
      writers: Object.fromEntries(Object.entries(writers).map(([w, s]) => [w, { last_seq: s, last_emitted_at: at(completeThrough) }])),
    };
    const name = nodeProgressName('', node);
    await this.dest.put(name, Buffer.from(JSON.stringify(p)));
    const written = (opts.writtenAt ?? reportedAt) / 1000;
    fs.utimesSync(path.join(this.dir, ...name.split('/')), written, written);
  }
}
