/**
 * The agent as one minified ES module (esbuild) with its source map beside
 * it: bin/trustroll-agent.ts and what it imports from agent/, hal/,
 * protocol/ and node_modules, none of the manager's code or packages. The
 * native addons stay outside: every `require('bindings')(name)` and
 * `require('…/x.node')` is pointed at `addons/<name>` next to the bundle,
 * where the cross-compiled files go. Arch-independent: built once, copied
 * into every target. The same sources and commit give the same bytes
 * wherever the output folder is (the source map names sources from the
 * repository root).
 */
import { build, type Metafile, type Plugin } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { BuildError } from './errors.ts';
import { REPO_ROOT } from './paths.ts';
import { describeSource, type SourceState } from './source.ts';

/** File name of the bundle; its map is `<name>.map`, its licences `<name>.LEGAL.txt`. */
export const BUNDLE_FILE = 'trustroll-agent.mjs';
/** Folder next to the bundle where it looks for native addons. */
export const ADDON_DIR = 'addons';
/**
 * Node (V8) flags every launch of the bundle uses on a runtime of
 * `nodeVersion` ("20.11.0", "v24.11.1"; image/README.md, "Memory"): the idle
 * agent runs mostly native code (TLS, signatures, file writes), so V8 runs
 * without any machine-code compiler (`--jitless`: bytecode interpreter,
 * regular expressions interpreted, no WebAssembly) and sizes its heap small:
 * the young generation stays at 1 MB per semi-space (V8 grows it to 2 MB
 * after the start-up burst and keeps it: about 2 MB of RSS), and the memory
 * reducer, which hands the start's garbage back to the system once the
 * process idles, starts 1 s after start-up work instead of 8 s.
 * `--no-node-snapshot`: Node builds its start-up state by running its
 * bootstrap code instead of deserialising its built-in V8 snapshot; the
 * agent, which loads crypto, TLS and net, then holds about 2 MB less
 * (start-up takes about 50 ms longer on x86, 0.9 s longer under qemu).
 * `--expose-gc`: the agent runs one compacting collection 1 s after it is
 * ready (agent/startup-memory.ts), which takes it to its settled size
 * at once instead of after V8's memory reducer's 8 s wait, and lower.
 * Node 20 warns at every start that --jitless turns WebAssembly off unless
 * `--no-expose-wasm` says so first; Node 22 and later have neither the
 * warning nor that flag.
 */
export function agentNodeFlags(nodeVersion: string): string[] {
  const major = Number(/^v?(\d+)\./.exec(nodeVersion)?.[1]);
  if (!Number.isInteger(major)) throw new BuildError('E_BUILD_RUNTIME', `"${nodeVersion}" is not a Node version`);
  return ['--jitless', '--optimize-for-size', '--max-semi-space-size=1', '--gc-memory-reducer-start-delay-ms=1000', '--no-node-snapshot', '--expose-gc', ...(major < 22 ? ['--no-expose-wasm'] : [])];
}
/**
 * Environment every launch of the bundle sets (image/README.md, "Memory"):
 * one glibc malloc arena, so the agent's few threads (libuv's pool for
 * crypto and file work, V8's helpers) do not each keep an arena of their
 * own (about 2 MB RSS on Node 24), and glibc's trim threshold fixed at its
 * default 128 kB: glibc otherwise raises it each time a large block is
 * freed, and keeps the freed top of its heap instead of handing it back
 * (about 0.3 MB). Neither has any effect with musl. A value already set
 * in the environment wins.
 */
export const AGENT_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '1', MALLOC_TRIM_THRESHOLD_: '131072' };

/** Source folders and files the agent's bundle may contain (besides node_modules). */
export const AGENT_SOURCES: readonly RegExp[] = [/^agent\//, /^hal\//, /^protocol\//, /^bin\/(trustroll-agent|technician-commands|command-line|stop-signal|version)\.ts$/];
/** Packages only the manager uses: the agent's bundle must not contain them. */
export const MANAGER_ONLY_PACKAGES = ['fastify', 'aedes', '@peculiar/x509', 'prom-client', 'preact', 'htm', 'uplot', 'tsx', 'esbuild'];

/** What a bundle build produced. */
export interface BundleResult {
  file: string;
  map: string;
  bytes: number;
  /** Inputs by origin: our folders, and packages from node_modules. */
  inputs: BundleInputs;
  /** esbuild's legal comments (`/*!` blocks, `@license`) from the bundled sources; empty when there are none. */
  legalComments: string;
}

/** The bundle's inputs by origin. */
export interface BundleInputs {
  /** Our sources, repository-relative. */
  ours: string[];
  /** Names of the node_modules packages esbuild bundled code from. */
  packages: string[];
  /** Their folders, repository-relative (a nested copy is its own package: node_modules/mqtt/node_modules/lru-cache). */
  packageDirs: string[];
}

/** esbuild plugin: native addons are loaded from `addons/` next to the bundle. */
const addonsBesideBundle: Plugin = {
  name: 'trustroll-addons',
  setup(b) {
    b.onResolve({ filter: /^bindings$/ }, () => ({ path: 'bindings', namespace: 'trustroll-addon' }));
    b.onResolve({ filter: /\.node$/ }, (args) => ({ path: basename(args.path), namespace: 'trustroll-addon' }));
    b.onLoad({ filter: /.*/, namespace: 'trustroll-addon' }, (args) => ({
      loader: 'js',
      contents: args.path === 'bindings'
        ? 'module.exports = (name) => require(globalThis.__trustrollAddon(name));'
        : `module.exports = require(globalThis.__trustrollAddon(${JSON.stringify(args.path)}));`,
    }));
  },
};

/**
 * Parts of MQTT.js a device never reaches, left out of the bundle: the agent's
 * configuration admits only `mqtts://` broker URLs (agent/config.ts) and no
 * SOCKS proxy, and the worker timers serve browsers only. MQTT.js loads them
 * at start all the same (its TCP/TLS connectors require the SOCKS client, its
 * protocol table the WebSocket one); in their place the bundle holds a module
 * that throws, naming what was left out, if anything ever calls it.
 * `request` is the path as the importing file writes it, `from` matches the
 * importing file.
 */
export const AGENT_UNUSED_MODULES: ReadonlyArray<{ request: string; from: RegExp; what: string }> = [
  { request: './ws', from: /node_modules\/mqtt\/build\/lib\/connect\/[^/]+$/, what: 'MQTT over WebSocket' },
  { request: './socks', from: /node_modules\/mqtt\/build\/lib\/connect\/[^/]+$/, what: 'MQTT through a SOCKS proxy' },
  { request: 'worker-timers', from: /node_modules\/mqtt\/build\/lib\/get-timer\.js$/, what: 'browser worker timers' },
];

/** An esbuild filter that matches exactly the import path `request`. */
const exactly = (request: string): RegExp => new RegExp(`^${request.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`);

/** esbuild plugin: each of AGENT_UNUSED_MODULES becomes a module whose every use throws. */
const leaveOutUnused: Plugin = {
  name: 'trustroll-unused',
  setup(b) {
    for (const [i, u] of AGENT_UNUSED_MODULES.entries()) {
      b.onResolve({ filter: exactly(u.request) }, (args) =>
        u.from.test(args.importer.replaceAll('\\', '/')) ? { path: String(i), namespace: 'trustroll-unused' } : undefined);
    }
    b.onLoad({ filter: /.*/, namespace: 'trustroll-unused' }, (args) => {
      const u = AGENT_UNUSED_MODULES[Number(args.path)]!;
      const msg = JSON.stringify(`${u.what} is not part of the device agent's bundle (its configuration admits only mqtts:// brokers, no proxy)`);
      return { loader: 'js', contents: `const no = () => { throw new Error(${msg}); };\nmodule.exports = new Proxy(no, { get: (_, k) => k === '__esModule' ? false : no });` };
    });
  },
};

/**
 * Packages that re-implement a Node module for browsers, and the Node module
 * the bundle uses in their place. MQTT.js and mqtt-packet each carry their
 * own copy of readable-stream (a port of Node 18's streams, about 80 kB
 * minified each, with its own polyfills); Node 20 and 24 have the same API
 * built in. Each is left out of the bundle, and its imports are Node's.
 */
export const AGENT_BUILTIN_ALIASES: Readonly<Record<string, string>> = { 'readable-stream': 'node:stream' };

/** esbuild plugin: each of AGENT_BUILTIN_ALIASES resolves to the Node module it re-implements. */
const builtinsForPolyfills: Plugin = {
  name: 'trustroll-builtins',
  setup(b) {
    for (const [pkg, builtin] of Object.entries(AGENT_BUILTIN_ALIASES)) {
      b.onResolve({ filter: exactly(pkg) }, () => ({ path: builtin, external: true }));
    }
  },
};

/** Lets the bundled CommonJS packages `require` Node's modules and the addons (ES module output). */
const BANNER = [
  "import { createRequire as __trCreateRequire } from 'node:module';",
  "import { fileURLToPath as __trFileURLToPath } from 'node:url';",
  'const require = __trCreateRequire(import.meta.url);',
  `globalThis.__trustrollAddon = (name) => __trFileURLToPath(new URL('./${ADDON_DIR}/' + name.replace(/\\.node$/, '') + '.node', import.meta.url));`,
].join('\n');

/** The package folder an input file belongs to: the innermost node_modules/<name> (or @scope/name) above it, or null. */
export function packageDirOf(input: string): string | null {
  return /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input)?.[1] ?? null;
}

/** Sorts the metafile's inputs into our sources and packages; throws if anything outside the agent slipped in. */
export function checkAgentInputs(meta: Metafile): BundleInputs {
  const ours = new Set<string>();
  const packages = new Set<string>();
  const packageDirs = new Set<string>();
  for (const input of Object.keys(meta.inputs)) {
    if (/^trustroll-(addon|unused):/.test(input)) continue;
    const dir = packageDirOf(input);
    if (dir) {
      packageDirs.add(dir);
      packages.add(/node_modules\/((?:@[^/]+\/)?[^/]+)$/.exec(dir)![1]!);
    } else if (AGENT_SOURCES.some((re) => re.test(input))) ours.add(input);
    else throw new BuildError('E_BUILD_BUNDLE', `the agent bundle would contain ${input}, which is not agent, HAL or protocol code`);
  }
  const banned = [...packages].filter((p) => MANAGER_ONLY_PACKAGES.includes(p));
  if (banned.length) throw new BuildError('E_BUILD_BUNDLE', `the agent bundle would contain the manager's packages ${banned.join(', ')}`);
  return { ours: [...ours].sort(), packages: [...packages].sort(), packageDirs: [...packageDirs].sort() };
}

/** Rewrites the source map's `sources` from paths relative to the output folder to paths from the repository root, so the map does not depend on where the bundle was built. */
function sourcesFromRepoRoot(mapFile: string, outDir: string): void {
  const map = JSON.parse(readFileSync(mapFile, 'utf8')) as { sources: string[] };
  // A plugin's virtual module ("trustroll-addon:pkcs11.node") is no path: kept as it is.
  map.sources = map.sources.map((s) => (/^[a-z][\w-]*:/.test(s) ? s : relative(REPO_ROOT, resolve(outDir, s)).replaceAll('\\', '/')));
  writeFileSync(mapFile, JSON.stringify(map));
}

/** Builds the bundle into `outDir`; the version and the commit (`source`) are written into it for `--version`. */
export async function bundleAgent(outDir: string, source?: Pick<SourceState, 'commit' | 'dirty'>): Promise<BundleResult> {
  mkdirSync(outDir, { recursive: true });
  const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const file = join(outDir, BUNDLE_FILE);
  // A legal-comments file left by an earlier build must not be read as this one's.
  rmSync(`${file}.LEGAL.txt`, { force: true });
  let result;
  try {
    result = await build({
      absWorkingDir: REPO_ROOT,
      entryPoints: ['bin/trustroll-agent.ts'],
      outfile: file,
      bundle: true,
      platform: 'node',
      format: 'esm',
      // The armv7 runtime is Node 20.11.
      target: 'node20.11',
      minify: true,
      sourcemap: 'linked',
      legalComments: 'external',
      metafile: true,
      logLevel: 'silent',
      banner: { js: BANNER },
      define: { __TRUSTROLL_VERSION__: JSON.stringify(version), __TRUSTROLL_SOURCE__: JSON.stringify(source ? describeSource(source) : '') },
      plugins: [addonsBesideBundle, leaveOutUnused, builtinsForPolyfills],
    });
  } catch (err) {
    throw new BuildError('E_BUILD_BUNDLE', (err as Error).message);
  }
  const inputs = checkAgentInputs(result.metafile);
  sourcesFromRepoRoot(`${file}.map`, outDir);
  const legalFile = `${file}.LEGAL.txt`;
  let legalComments = '';
  try { legalComments = readFileSync(legalFile, 'utf8'); } catch { /* esbuild writes none when the sources have no legal comments */ }
  return { file, map: `${file}.map`, bytes: statSync(file).size, inputs, legalComments };
}
