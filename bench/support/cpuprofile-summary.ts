/**
 * Summarises V8 .cpuprofile files (from `node --cpu-prof`): top functions by self time, and by
 * file (self time of all functions in it), so a missed benchmark target comes with its explanation.
 *
 *   node --import tsx bench/support/cpuprofile-summary.ts [--top 15] FILE.cpuprofile ...
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  functions: { name: string; where: string; selfMs: number; pct: number }[];
  files: { where: string; selfMs: number; pct: number }[];
}

function shortUrl(url: string): string {
  if (!url) return '(native)';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) return u.slice(nm + 'node_modules/'.length);
  // The benchmark's temporary build (…/pkg/dist/…) or the checkout.
  const built = u.indexOf('/pkg/dist/');
  if (built >= 0) return u.slice(built + '/pkg/'.length);
  const repo = u.indexOf('/main/');
  return repo >= 0 ? u.slice(repo + '/main/'.length) : u;
}

export function summarise(file: string): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  // Self time per node: the time deltas attributed to each sample.
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0));
  }
  const totalUs = [...self.values()].reduce((a, b) => a + b, 0);
  const fnSelf = new Map<string, { name: string; where: string; us: number }>();
  const fileSelf = new Map<string, number>();
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    const where = `${shortUrl(cf.url)}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    const name = cf.functionName || '(anonymous)';
    const key = `${name} ${where}`;
    const prev = fnSelf.get(key) ?? { name, where, us: 0 };
    prev.us += us;
    fnSelf.set(key, prev);
    const f = cf.url ? shortUrl(cf.url) : name.startsWith('(') ? name : '(native)';
    fileSelf.set(f, (fileSelf.get(f) ?? 0) + us);
  }
  const pct = (us: number): number => (totalUs ? (100 * us) / totalUs : 0);
  return {
    file,
    totalMs: totalUs / 1000,
    functions: [...fnSelf.values()].sort((a, b) => b.us - a.us).map((f) => ({ name: f.name, where: f.where, selfMs: f.us / 1000, pct: pct(f.us) })),
    files: [...fileSelf.entries()].sort((a, b) => b[1] - a[1]).map(([where, us]) => ({ where, selfMs: us / 1000, pct: pct(us) })),
  };
}

export function formatSummary(s: ProfileSummary, top = 15): string {
  const lines = [`${path.basename(s.file)}: ${(s.totalMs / 1000).toFixed(2)} s sampled`, '', '| self ms | self % | function | where |', '| ---: | ---: | --- | --- |'];
  for (const f of s.functions.slice(0, top)) lines.push(`| ${f.selfMs.toFixed(0)} | ${f.pct.toFixed(1)} | ${f.name} | ${f.where} |`);
  lines.push('', '| self ms | self % | file |', '| ---: | ---: | --- |');
  for (const f of s.files.slice(0, Math.ceil(top / 2))) lines.push(`| ${f.selfMs.toFixed(0)} | ${f.pct.toFixed(1)} | ${f.where} |`);
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '15' } }, allowPositionals: true });
  if (positionals.length === 0) {
    console.error('usage: cpuprofile-summary.ts [--top N] FILE.cpuprofile ...');
    process.exit(2);
  }
  for (const f of positionals) console.log(formatSummary(summarise(f), Number(values.top)) + '\n');
}
