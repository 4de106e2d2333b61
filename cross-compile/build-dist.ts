/**
 * `npm run build`: compiles the TypeScript sources to JavaScript with type
 * declarations in dist/ (tsconfig.build.json), the form the npm package
 * runs (bin/*.mjs pick dist/ when no .ts source is beside them). Besides
 * tsc it copies the dashboard's static files, gives the CA's worker threads
 * a boot file without tsx, and points `new URL('./x.ts', import.meta.url)`
 * (child processes and workers) at the compiled `.js`.
 */
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { BuildError } from './errors.ts';
import { REPO_ROOT } from './paths.ts';
import { agentConfigJsonSchema } from './config-schema.ts';

export const DIST_DIR = join(REPO_ROOT, 'dist');

const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true })
  .flatMap((e) => e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]);

/** Builds dist/ from scratch; returns the number of JavaScript files. */
export function buildDist(): number {
  rmSync(DIST_DIR, { recursive: true, force: true });
  const tsc = spawnSync(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(REPO_ROOT, 'tsconfig.build.json')], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (tsc.status !== 0) throw new BuildError('E_BUILD_DIST', `tsc -p tsconfig.build.json failed:\n${tsc.stdout}${tsc.stderr}`);

  cpSync(join(REPO_ROOT, 'manager', 'dashboard'), join(DIST_DIR, 'manager', 'dashboard'), { recursive: true });
  // Workers do not inherit loaders; compiled, the worker body is plain JavaScript.
  writeFileSync(join(DIST_DIR, 'manager', 'ca', 'leaf-worker-boot.mjs'), "// Entry of issueLeaves' worker threads (compiled build: no tsx needed).\nawait import('./leaf-worker.js');\n");
  writeFileSync(join(DIST_DIR, 'agent-config.schema.json'), JSON.stringify(agentConfigJsonSchema(), null, 2) + '\n');

  const js = walk(DIST_DIR).filter((f) => f.endsWith('.js'));
  const left: string[] = [];
  for (const file of js) {
    const text = readFileSync(file, 'utf8');
    const fixed = text.replace(/new URL\((['"])(\.{1,2}\/[^'"]+)\.ts\1, import\.meta\.url\)/g, 'new URL($1$2.js$1, import.meta.url)');
    if (fixed !== text) writeFileSync(file, fixed);
    for (const m of fixed.matchAll(/(?:from |import\(|new URL\()(['"])(\.{1,2}\/[^'"]+\.ts)\1/g)) left.push(`${relative(REPO_ROOT, file)}: ${m[2]}`);
  }
  if (left.length) throw new BuildError('E_BUILD_DIST', `compiled files still name TypeScript sources:\n${left.join('\n')}`);
  if (!existsSync(join(DIST_DIR, 'bin', 'trustroll.js')) || !existsSync(join(DIST_DIR, 'bin', 'trustroll-agent.js'))) throw new BuildError('E_BUILD_DIST', 'dist/bin has no entry points');
  return js.length;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const started = Date.now();
  try {
    const n = buildDist();
    process.stdout.write(`dist/: ${n} JavaScript files with declarations in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  } catch (err) {
    process.stderr.write(`build: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
