import type { Kind, Reason } from './kinds.js';

export const WIRE_VERSION = 1 as const;

/** Size of the billed resource. All three are always present; 0 is a value, not "missing". */
export interface Shape {
  cpu: number;
  mem_bytes: number;
  storage_bytes: number;
}

/** What a manager passes to `emit`. The recorder adds `v`, `id`, `node`, `writer` and `seq`. */
export interface EntryInput {
  kind: Kind;
  reason: Reason;
  /** Required for vm.* kinds; optional on snap.* kinds (the VM the snapshot was taken of). */
  vm_id?: string;
  /** Required for snap.* kinds. */
  snapshot_id?: string;
  /** The snapshot a VM was cloned or restored from. */
  source_snapshot_id?: string;
  hypervisor?: string;
  shape: Shape;
  /**
   * When it happened. Pass one `now` to adjacent stop/start events so they share a timestamp.
   * A Date, or an RFC 3339 string; stored as UTC with milliseconds. Defaults to the recorder's clock.
   */
  emitted_at?: string | Date;
}

/** One ledger line, wire format v1. Field order here is the order on the wire. */
export interface LedgerEntry {
  v: typeof WIRE_VERSION;
  id: string;
  node: string;
  writer: string;
  seq: number;
  kind: Kind;
  vm_id?: string;
  snapshot_id?: string;
  source_snapshot_id?: string;
  reason: Reason;
  hypervisor?: string;
  shape: Shape;
  emitted_at: string;
}

const str = JSON.stringify;

/**
 * Serialize with a fixed key order: every line starts with `{"v":1,"id":"`, which lets readers
 * resync after a torn line. Built by hand (kind and reason are validated constants, strings go
 * through JSON.stringify for escaping): the emit hot path is mostly this function.
 */
export function serializeEntry(e: LedgerEntry): string {
  let out = `{"v":${e.v},"id":${str(e.id)},"node":${str(e.node)},"writer":${str(e.writer)},"seq":${e.seq},"kind":${str(e.kind)}`;
  if (e.vm_id !== undefined) out += `,"vm_id":${str(e.vm_id)}`;
  if (e.snapshot_id !== undefined) out += `,"snapshot_id":${str(e.snapshot_id)}`;
  if (e.source_snapshot_id !== undefined) out += `,"source_snapshot_id":${str(e.source_snapshot_id)}`;
  out += `,"reason":${str(e.reason)}`;
  if (e.hypervisor !== undefined) out += `,"hypervisor":${str(e.hypervisor)}`;
  out += `,"shape":{"cpu":${e.shape.cpu},"mem_bytes":${e.shape.mem_bytes},"storage_bytes":${e.shape.storage_bytes}},"emitted_at":${str(e.emitted_at)}}`;
  return out;
}

/** The marker every serialized entry starts with; readers split a torn line at its next occurrence. */
export const LINE_START_MARKER = '{"v":';
