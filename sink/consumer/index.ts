/** The central consumer as a library: embed `runRollup` / `computeUsage` in a billing service. */
export { runRollup, DEFAULT_GRACE_MS, DEFAULT_STALE_AFTER_MS, DEFAULT_RETAIN_MS, DEFAULT_MAX_SKEW_MS } from './run-rollup.js';
export type { RollupOptions, RollupResult, RollupProgress, RunSummary } from './run-rollup.js';
export type { UsageInterval, HourlyRow, TimelineAnomaly, LineLocation } from './types.js';
export type { RollupReport, Counted, BadObject } from './report.js';
export type { NodeStatus } from './watermark.js';
export type { SeqGap } from './seq-tracker.js';
export { splitByHour } from './hour-split.js';
export type { HourSlice } from './hour-split.js';
export { RollupLockedError, lockState, acquireStateLock, STATE_LOCK_STALE_MS } from './state-lock.js';
export type { StateLock } from './state-lock.js';
export { StateFileError } from './state-store.js';
export { computeUsage, formatUsageTable, formatRatio, vcpuHours, memGibHours, storageGibHours, USAGE_GROUPS } from './usage.js';
export type { UsageTable, UsageLine, UsageHour, UsageTotals, UsageOptions, UsageGroupBy } from './usage.js';
export { renderUsageHtml } from './usage-html.js';
