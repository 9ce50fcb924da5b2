/**
 * metering-ledger: the recorder library. A leaf: it depends on nothing in `sink/`.
 */
export { KINDS, REASONS, FAMILIES, ALL_KINDS, ALL_REASONS, describeKind, isKind, isReason } from './kinds.js';
export type { Kind, Reason, Family, Phase, KindInfo } from './kinds.js';
export { WIRE_VERSION, serializeEntry } from './entry.js';
export type { EntryInput, LedgerEntry, Shape } from './entry.js';
export { MeteringValidationError, checkWireEntry, isLedgerEntry, parseTimestamp } from './validate.js';
export { NopRecorder, orNop } from './recorder.js';
export type { Recorder, RecorderStats } from './recorder.js';
export { CaptureRecorder } from './capture-recorder.js';
export type { CaptureRecorderOptions } from './capture-recorder.js';
export { FileRecorder, openRecorder, resolveLedgerDir, checkNodeId, DEFAULT_ROOT_DIR } from './file-recorder.js';
export type { FileRecorderOptions, Durability } from './file-recorder.js';
export { getRecorder, setRecorder, closeRecorder } from './singleton.js';
export { EmitStage, emitAfterCommit } from './stage.js';
export { readLedger, parseLedgerLine, parseLedgerBuffer, LedgerLineSplitter, DEFAULT_MAX_LINE_BYTES } from './reader.js';
export type { LedgerRecord, EntryRecord, InvalidRecord, ReadLedgerOptions } from './reader.js';
export {
  ACTIVE_LINK,
  activeSegmentName,
  isSegmentName,
  listSegments,
  segmentCreatedAt,
  FILE_MODE,
  DIR_MODE,
} from './ledger-layout.js';
export { ulid } from './ulid.js';
export type { Logger } from './log.js';
