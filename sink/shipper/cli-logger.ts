import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

/**
 * The CLI's logger. Not on a terminal: pino JSON lines on stderr (journald, containers, log
 * shippers). On a terminal: one short readable line per record, errors as `metering <command>:
 * <message>` with a `hint:` line, so a person never has to read JSON (no extra dependency).
 */
export function cliLogger(name: string, options: { label?: string; tty?: boolean } = {}): Logger {
  const level = process.env.METERING_LOG_LEVEL ?? 'info';
  const tty = options.tty ?? process.stderr.isTTY === true;
  if (tty) return pino({ name, level }, humanStream(options.label ?? name.replace(/^metering-/, 'metering ')));
  return pino({ name, level }, pino.destination({ fd: 2, sync: true }));
}

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warning', 50: 'error', 60: 'fatal' };
/** pino's own fields, and the ones printed specially: everything else is shown as key=value. */
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'hint', 'exit_code']);

function value(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) || v === '' ? JSON.stringify(v) : v;
  if (v && typeof v === 'object' && 'message' in v && typeof (v as { message: unknown }).message === 'string') return JSON.stringify((v as { message: string }).message);
  return JSON.stringify(v);
}

/** One pino record (a JSON line) as the line a person reads. */
export function formatHumanLine(label: string, line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const lvl = typeof rec.level === 'number' ? rec.level : 30;
  // An error's cause reads as part of the sentence: "metering ship: shipper failed: <cause>".
  const cause = lvl >= 50 && typeof rec.err === 'string' ? rec.err : undefined;
  const fields = Object.entries(rec)
    .filter(([k, v]) => !SKIP.has(k) && v !== undefined && !(k === 'err' && cause !== undefined))
    .map(([k, v]) => `${k}=${value(v)}`)
    .join(' ');
  const msg = String(rec.msg ?? '') + (cause ? `: ${cause}` : '');
  const hint = typeof rec.hint === 'string' ? `\n  hint: ${rec.hint}` : '';
  if (lvl >= 50) return `${label}: ${msg}${fields ? ` (${fields})` : ''}${hint}\n`;
  const time = typeof rec.time === 'number' ? new Date(rec.time).toTimeString().slice(0, 8) : '';
  const tag = lvl >= 40 ? 'warning: ' : lvl < 30 ? `${LEVELS[lvl] ?? 'debug'}: ` : '';
  return `${time ? `${time} ` : ''}${tag}${msg}${fields ? `  ${fields}` : ''}${hint}\n`;
}

function humanStream(label: string): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) process.stderr.write(formatHumanLine(label, line));
      done();
    },
  });
}
