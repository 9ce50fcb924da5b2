/** Wire-format constants. These strings are the contract with every consumer: never rename one. */

export const KINDS = {
  VM_COMPUTE_START: 'vm.compute.start',
  VM_COMPUTE_STOP: 'vm.compute.stop',
  VM_STORAGE_START: 'vm.storage.start',
  VM_STORAGE_STOP: 'vm.storage.stop',
  SNAP_STORAGE_START: 'snap.storage.start',
  SNAP_STORAGE_STOP: 'snap.storage.stop',
  VM_COMPUTE_RUNNING: 'vm.compute.running',
  VM_STORAGE_RUNNING: 'vm.storage.running',
  SNAP_STORAGE_RUNNING: 'snap.storage.running',
} as const;

export type Kind = (typeof KINDS)[keyof typeof KINDS];
export const ALL_KINDS: readonly Kind[] = Object.values(KINDS);

export const REASONS = {
  BOOT: 'boot',
  RESTART: 'restart',
  CLONE: 'clone',
  RESTORE: 'restore',
  HIBERNATE_WAKE: 'hibernate-wake',
  STOP_USER: 'stop-user',
  STOP_CRASH: 'stop-crash',
  VM_RM: 'vm-rm',
  SNAP_RM: 'snap-rm',
  BASELINE: 'baseline',
} as const;

export type Reason = (typeof REASONS)[keyof typeof REASONS];
export const ALL_REASONS: readonly Reason[] = Object.values(REASONS);

/** A family is what one interval measures: compute of a VM, storage of a VM, storage of a snapshot. */
export const FAMILIES = ['vm.compute', 'vm.storage', 'snap.storage'] as const;
export type Family = (typeof FAMILIES)[number];

/** What an event does to its resource's interval. */
export type Phase = 'start' | 'stop' | 'running';

export interface KindInfo {
  family: Family;
  phase: Phase;
  /** The field that names the resource: `vm_id` for vm.*, `snapshot_id` for snap.*. */
  idField: 'vm_id' | 'snapshot_id';
}

const kindInfo = new Map<string, KindInfo>(
  ALL_KINDS.map((kind) => {
    const dot = kind.lastIndexOf('.');
    const family = kind.slice(0, dot) as Family;
    const phase = kind.slice(dot + 1) as Phase;
    return [kind, { family, phase, idField: family.startsWith('snap.') ? 'snapshot_id' : 'vm_id' }];
  }),
);

export function isKind(value: unknown): value is Kind {
  return typeof value === 'string' && kindInfo.has(value);
}

const reasonSet: ReadonlySet<string> = new Set(ALL_REASONS);

export function isReason(value: unknown): value is Reason {
  return typeof value === 'string' && reasonSet.has(value);
}

/** Family, phase and id field of a kind; undefined for an unknown kind. */
export function describeKind(kind: string): KindInfo | undefined {
  return kindInfo.get(kind);
}

/** Reasons that only make sense when something ends. A start tagged with one is a caller bug. */
export const STOP_ONLY_REASONS: ReadonlySet<Reason> = new Set<Reason>([
  REASONS.STOP_USER,
  REASONS.STOP_CRASH,
  REASONS.VM_RM,
  REASONS.SNAP_RM,
]);

/** Reasons that only make sense when something begins. */
export const START_ONLY_REASONS: ReadonlySet<Reason> = new Set<Reason>([
  REASONS.BOOT,
  REASONS.RESTART,
  REASONS.CLONE,
  REASONS.HIBERNATE_WAKE,
]);
