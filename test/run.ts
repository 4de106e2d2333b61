/**
 * Test entry point (`npm test`): runs every `test/**\/*.test.ts` with mocha
 * in this process (tsx loaded via --import), then prints one line
 * `N passed, N failed` for CI, after the ten slowest files with their
 * seconds (stderr; hooks included). Extra arguments are path filters.
 */
import Mocha from 'mocha';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, relative } from 'node:path';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const patterns = process.argv.slice(2);
const walk = (dir: string): string[] =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : []);
const files = walk('test')
  .filter((f) => patterns.length === 0 || patterns.some((p) => f.includes(p)))
  .sort();

const mocha = new Mocha({ timeout: 60_000, reporter: 'spec', slow: 2_000 });
for (const f of files) mocha.addFile(join(root, f));
await mocha.loadFilesAsync();
const fileSeconds = new Map<string, number>();
const runner = mocha.run((failures) => {
  const slowest = [...fileSeconds].sort((a, b) => b[1] - a[1]).slice(0, 10);
  if (slowest.length > 1) process.stderr.write(`\nslowest files:\n${slowest.map(([f, s]) => `  ${s.toFixed(1).padStart(7)} s  ${relative(root, f)}`).join('\n')}\n`);
  const stats = runner.stats ?? { passes: 0, failures, pending: 0 };
  const skipped = stats.pending ? `, ${stats.pending} skipped` : '';
  process.stdout.write(`\n${stats.passes} passed, ${stats.failures} failed${skipped}\n`);
  process.exitCode = failures > 0 || files.length === 0 ? 1 : 0;
  if (files.length === 0) process.stderr.write(`no test files matched in ${relative(process.cwd(), root) || '.'}\n`);
});
// Seconds per file: each top-level describe, from its start to its end (its hooks included).
const suiteStarted = new Map<Mocha.Suite, number>();
runner.on('suite', (suite) => { if (suite.parent?.root && suite.file) suiteStarted.set(suite, Date.now()); });
runner.on('suite end', (suite) => {
  const t = suiteStarted.get(suite);
  if (t !== undefined && suite.file) fileSeconds.set(suite.file, (fileSeconds.get(suite.file) ?? 0) + (Date.now() - t) / 1000);
});
