/**
 * The simulated day `npm run demo` plays: three nodes, a handful of VMs and snapshots, each lane a
 * sequence of vm-manager commands at simulated times. Lanes run concurrently (several manager
 * processes per node at once, contending for the node's store lock and appending to its ledger).
 * At each barrier every lane has caught up to that time and every node reconciles (baselines).
 *
 * Exported as data so the demo test can work out the expected bill from the same script on its own.
 */

export interface DemoCommand {
  /** vm-manager arguments (the demo adds --store, --ledger-dir, --node, --vmm simulated and --at). */
  args: string[];
  /** The command is expected to fail (exit 1): e.g. a stop that finds the VMM hung. */
  fails?: boolean;
}

export interface DemoStep {
  /** Simulated time of day, HH:MM (UTC). */
  at: string;
  /** One command, or several started at the same moment (a race). */
  run: DemoCommand[];
  /** What this step shows, printed beside it. */
  note?: string;
}

export interface DemoLane {
  node: string;
  steps: DemoStep[];
}

export const NODES = ['node-a', 'node-b', 'node-c'] as const;

/** Every node reconciles (emits baselines, closes crashed VMs) at these times; 24:00 is the end of the day. */
export const BARRIERS = ['06:00', '12:00', '18:00', '24:00'] as const;

const cmd = (...args: string[]): DemoCommand[] => [{ args }];
const step = (at: string, args: string[], note?: string): DemoStep => ({ at, run: [{ args }], note });

export const LANES: DemoLane[] = [
  {
    node: 'node-a',
    steps: [
      step('00:00', ['create', 'web-1', '--cpu', '4', '--mem', '8GiB', '--disk', '40GiB', '--start'], 'boot'),
      step('07:30', ['snapshot', 'create', 'web-1', '--id', 'web-1-daily', '--size', '12GiB']),
      step('13:00', ['stop', 'web-1'], 'maintenance'),
      step('13:20', ['start', 'web-1'], 'restart'),
    ],
  },
  {
    node: 'node-a',
    steps: [
      step('02:00', ['create', 'batch-1', '--cpu', '16', '--mem', '64GiB', '--disk', '100GiB']),
      step('02:05', ['start', 'batch-1']),
      step('05:35', ['stop', 'batch-1']),
      step('05:40', ['rm', 'batch-1']),
    ],
  },
  {
    node: 'node-a',
    steps: [
      step('09:00', ['create', 'ci-1', '--cpu', '8', '--mem', '16GiB', '--disk', '50GiB', '--start']),
      step('09:45', ['snapshot', 'create', 'ci-1', '--id', 'ci-golden', '--size', '8GiB']),
      step('10:00', ['clone', 'ci-golden', '--id', 'ci-2'], 'clone'),
      step('10:05', ['clone', 'ci-golden', '--id', 'ci-3'], 'clone'),
      step('14:00', ['rm', 'ci-2', '--force']),
      step('14:10', ['rm', 'ci-3', '--force']),
      step('17:00', ['stop', 'ci-1']),
      { at: '20:00', run: [...cmd('snapshot', 'rm', 'ci-golden'), ...cmd('snapshot', 'rm', 'ci-golden')], note: 'two processes race to delete it: one stop recorded' },
    ],
  },
  {
    node: 'node-b',
    steps: [
      step('00:00', ['create', 'db-1', '--cpu', '8', '--mem', '32GiB', '--disk', '200GiB', '--hypervisor', 'firecracker', '--start']),
      step('06:30', ['snapshot', 'create', 'db-1', '--id', 'db-1-pre-migration', '--size', '150GiB']),
      step('08:00', ['crash', 'db-1'], 'the VMM dies; nobody tells the manager'),
      step('08:45', ['start', 'db-1'], 'proves it dead: stop-crash, then restart'),
      step('11:00', ['restore', 'db-1', 'db-1-pre-migration'], 'the migration went wrong'),
      step('22:00', ['snapshot', 'rm', 'db-1-pre-migration']),
    ],
  },
  {
    node: 'node-b',
    steps: [
      step('01:00', ['create', 'api-1', '--cpu', '2', '--mem', '4GiB', '--disk', '20GiB', '--hypervisor', 'firecracker', '--start']),
      step('14:55', ['hang', 'api-1'], 'the VMM stops answering'),
      { at: '15:00', run: [{ args: ['stop', 'api-1'], fails: true }], note: 'error state: interval stays open, still billed' },
      step('15:30', ['stop', 'api-1', '--force'], 'closes it'),
    ],
  },
  {
    node: 'node-b',
    steps: [
      step('12:30', ['create', 'api-2', '--cpu', '2', '--mem', '4GiB', '--disk', '20GiB', '--hypervisor', 'firecracker', '--start']),
      step('16:00', ['crash', 'api-2'], 'dies; the 18:00 reconcile notices'),
    ],
  },
  {
    node: 'node-c',
    steps: [
      step('08:00', ['create', 'dev-1', '--cpu', '2', '--mem', '8GiB', '--disk', '30GiB', '--start']),
      step('18:30', ['stop', 'dev-1']),
    ],
  },
  {
    node: 'node-c',
    steps: [
      step('09:15', ['create', 'dev-2', '--cpu', '4', '--mem', '8GiB', '--disk', '30GiB', '--start']),
      step('09:30', ['snapshot', 'create', 'dev-2', '--id', 'dev-2-a', '--size', '5GiB']),
      step('16:45', ['rm', 'dev-2', '--force'], 'its snapshot outlives it'),
    ],
  },
  {
    node: 'node-c',
    steps: [step('21:00', ['create', 'ml-1', '--cpu', '32', '--mem', '128GiB', '--disk', '500GiB', '--start'], 'runs past midnight')],
  },
];

/** Minutes since midnight of "HH:MM" (24:00 allowed). */
export function minuteOfDay(hhmm: string): number {
  const m = /^(\d{2}):(\d{2})$/.exec(hhmm);
  if (!m) throw new Error(`bad time of day ${hhmm}`);
  return Number(m[1]) * 60 + Number(m[2]);
}

/** The simulated instant of "HH:MM" on the day starting at `dayStart` (ms since epoch). */
export function instant(dayStart: number, hhmm: string): Date {
  return new Date(dayStart + minuteOfDay(hhmm) * 60_000);
}

/** The day the demo plays: yesterday (UTC), so the whole day is in the past and every hour can be final. */
export function demoDayStart(now: Date = new Date()): number {
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) - 86_400_000;
}
