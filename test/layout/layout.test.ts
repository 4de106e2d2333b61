/**
 * The house rules of the code (README, "Layout"), checked on the sources:
 * the import graph of manager/, bin/, agent/, protocol/ and hal/ (static
 * `import ... from`, `export ... from`, side-effect imports and dynamic
 * `import()` of relative paths, TypeScript and the dashboard's JavaScript;
 * type-only imports count) has no circle; code imports down (agent and
 * manager never import each other, protocol/ and hal/ import nothing of
 * ours, manager/ uses only protocol/, nothing in agent/ or manager/ imports
 * demo/, nothing below bin/ imports bin/); no file in manager/, bin/ or agent/ is over 300 lines;
 * and manager/ shows rooms, not a heap (at most 10 files at its top).
 */
import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const GRAPHED = ['manager', 'bin', 'agent', 'protocol', 'hal'];
const SIZED = ['manager', 'bin', 'agent'];
const MAX_LINES = 300;
const SOURCE = /\.(ts|js|mjs)$/;

/**
 * Circles that were in the tree when this test was written, each for its
 * owner to break. The test fails when one of them changes or is gone, so
 * an entry cannot outlive its circle: delete it with the fix.
 */
const KNOWN_CIRCLES: readonly { files: readonly string[]; why: string }[] = [];

/** Every source file under `dir` (repo-relative, posix separators). */
function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = posix.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : sources(rel);
    return SOURCE.test(e.name) ? [rel] : [];
  });
}

const IMPORTS = [
  /\b(?:import|export)\b[^'";]*?\bfrom\s*(['"])(\.\.?\/[^'"]+)\1/g, // import x from './a', export { y } from './b', multi-line lists
  /\bimport\s*(['"])(\.\.?\/[^'"]+)\1/g, // import './side-effect.ts'
  /\bimport\s*\(\s*(['"])(\.\.?\/[^'"]+)\1\s*\)/g, // await import('./lazy.ts')
];

/** The relative imports of one file, resolved to repo-relative paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out = new Set<string>();
  for (const re of IMPORTS) for (const m of text.matchAll(re)) out.add(posix.normalize(posix.join(posix.dirname(file), m[2]!)));
  // bin/*.mjs run the compiled package (dist/, npm run build) when no .ts source is beside them: not a source import.
  return [...out].filter((d) => !d.startsWith('dist/'));
}

const files = GRAPHED.flatMap(sources);
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const roomOf = (path: string) => path.split('/')[0]!;

/** Strongly connected components with more than one file (or a file importing itself): Tarjan's algorithm. */
function circles(g: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || g.get(v)!.includes(v)) found.push(scc.sort());
  };
  for (const v of g.keys()) if (!index.has(v)) visit(v);
  return found;
}

/** One path around a circle, for the message: a -> b -> ... -> a. */
function loopThrough(g: ReadonlyMap<string, readonly string[]>, members: readonly string[]): string {
  const inside = new Set(members);
  const start = members[0]!;
  const prev = new Map<string, string>();
  const queue = [start];
  while (queue.length) {
    const v = queue.shift()!;
    for (const w of g.get(v) ?? []) {
      if (w === start) {
        const path = [v];
        while (path[0] !== start) path.unshift(prev.get(path[0]!)!);
        return [...path, start].join(' -> ');
      }
      if (inside.has(w) && !prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return members.join(', ');
}

describe('layout: the import graph and the size of files', () => {
  it('reads the graph it checks (every graphed room, imports resolved to files that exist)', () => {
    for (const room of GRAPHED) assert.ok(files.some((f) => roomOf(f) === room), `no source files found in ${room}/`);
    assert.ok(graph.get('manager/manager.ts')!.includes('manager/rotation/orchestrator.ts'), 'static imports are read');
    assert.ok(files.some((f) => f.startsWith('manager/dashboard/') && f.endsWith('.js')), 'the dashboard\'s JavaScript is in the graph');
    assert.ok([...graph.values()].some((deps) => deps.some((d) => d.endsWith('.js'))), 'JavaScript imports are read');
    const unresolved = [...graph].flatMap(([f, deps]) => deps.filter((d) => !existsSync(join(ROOT, d)) || !statSync(join(ROOT, d)).isFile()).map((d) => `${f} imports ${d}`));
    assert.deepEqual(unresolved, [], 'every relative import names a file');
  });

  it('has no import circle', () => {
    const found = circles(graph);
    const known = (scc: readonly string[]) => KNOWN_CIRCLES.find((k) => k.files.join('\n') === scc.join('\n'));
    const fresh = found.filter((scc) => !known(scc)).map((scc) => `${loopThrough(graph, scc)}  (${scc.length} files)`);
    assert.deepEqual(fresh, [], `import circles:\n${fresh.join('\n')}`);
    const gone = KNOWN_CIRCLES.filter((k) => !found.some((scc) => scc.join('\n') === k.files.join('\n'))).map((k) => k.files.join(', '));
    assert.deepEqual(gone, [], 'a circle listed in KNOWN_CIRCLES is gone or changed: delete its entry');
  });

  it('imports down: agent and manager never import each other, protocol/ and hal/ import nothing of ours, no demo/ below bin/, no bin/ below it', () => {
    const allowed: Record<string, readonly string[]> = {
      protocol: ['protocol'],
      hal: ['hal'],
      agent: ['agent', 'protocol', 'hal'],
      manager: ['manager', 'protocol'],
      bin: GRAPHED.concat('demo'),
    };
    const wrong = [...graph].flatMap(([f, deps]) => deps.filter((d) => !allowed[roomOf(f)]!.includes(roomOf(d))).map((d) => `${f} imports ${d}`));
    assert.deepEqual(wrong, []);
  });

  it(`no file in ${SIZED.join('/, ')}/ is over ${MAX_LINES} lines`, () => {
    const lines = (f: string) => readFileSync(join(ROOT, f), 'utf8').split('\n').length - 1;
    const long = SIZED.flatMap(sources).map((f) => [f, lines(f)] as const).filter(([, n]) => n > MAX_LINES).map(([f, n]) => `${f}: ${n} lines`);
    assert.deepEqual(long, [], `split by concern: ${long.join('; ')}`);
  });

  it('manager/ shows rooms: at most 10 files at its top, manager.ts the one factory among them', () => {
    const top = readdirSync(join(ROOT, 'manager'), { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
    assert.ok(top.length <= 10, `manager/ has ${top.length} files at its top: ${top.join(', ')}`);
    assert.ok(top.includes('manager.ts'));
    const builders = files.filter((f) => f.startsWith('manager/') && f !== 'manager/manager.ts' && /\bnew Orchestrator\(/.test(readFileSync(join(ROOT, f), 'utf8')));
    assert.deepEqual(builders, [], 'only manager/manager.ts builds an Orchestrator');
  });

  it('finds a circle and an upward import when there is one (the checks themselves)', () => {
    const g = new Map([['a.ts', ['b.ts']], ['b.ts', ['c.ts']], ['c.ts', ['a.ts']], ['d.ts', ['a.ts']], ['e.ts', ['e.ts']]]);
    assert.deepEqual(circles(g).map((s) => s.join(',')).sort(), ['a.ts,b.ts,c.ts', 'e.ts']);
    assert.equal(loopThrough(g, ['a.ts', 'b.ts', 'c.ts']), 'a.ts -> b.ts -> c.ts -> a.ts');
    const text = "import type { X } from './x.ts';\nimport {\n  a,\n  b,\n} from '../y.ts';\nexport * from './z.ts';\nimport './side.ts';\nconst m = await import('./lazy.js');\nconst s = 'from ./not-an-import';\n";
    const found = [...IMPORTS.flatMap((re) => [...text.matchAll(re)].map((m) => m[2]))].sort();
    assert.deepEqual(found, ['../y.ts', './lazy.js', './side.ts', './x.ts', './z.ts']);
  });
});
