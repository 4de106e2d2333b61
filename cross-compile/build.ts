/**
 * `npm run cross-compile -- --arch arm64|armv7`: the agent for one CPU, laid
 * out as it is installed on the device (/opt/trustroll), in
 * cross-compile/out/<arch>/trustroll/:
 *
 *   bin/node                    the target's Node runtime (official build, stripped)
 *   bin/trustroll-agent         sh launcher (what the technician runs)
 *   lib/trustroll-agent.mjs     the agent bundle (+ .map)
 *   lib/addons/*.node           better-sqlite3 and pkcs11js for the target
 *   share/agent-config.schema.json
 *   LEGAL.txt                   the licence text of every component (cross-compile/licenses.ts)
 *   build-info.json             versions, the commit, the runtime's support status, the glibc floor
 *
 * Native builds are cached and reused while their inputs are unchanged. The
 * same commit gives the same tree: nothing in it depends on the clock or on
 * where the output folder is.
 */
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { buildAddons, type BuiltAddon } from './addons.ts';
import { ADDON_DIR, AGENT_ENV, agentNodeFlags, BUNDLE_FILE, bundleAgent } from './bundle.ts';
import { agentConfigJsonSchema } from './config-schema.ts';
import { checkFloor, floorOf, measureElf, type LibcFloor } from './elf-floor.ts';
import { BuildError } from './errors.ts';
import { LEGAL_FILE, legalNotice, npmComponents, runtimeComponent, sqliteComponent, trustrollComponent, type Component } from './licenses.ts';
import { addonCache, OUT_DIR, REPO_ROOT } from './paths.ts';
import { fetchRuntime } from './runtime.ts';
import { sourceState, type SourceState } from './source.ts';
import { targetOf, type Target } from './targets.ts';

/** What `build-info.json` holds. */
export interface BuildInfo {
  name: 'trustroll-agent';
  version: string;
  /** The commit it was built from; dirty when the image's sources had uncommitted changes; the time every packed file carries (the same whether it came from SOURCE_DATE_EPOCH or the commit). */
  source: { commit: string; dirty: boolean; date: string };
  arch: Target['arch'];
  nodeArch: Target['nodeArch'];
  runtime: { package: string; version: string; modules: string; support: string };
  addons: { pkg: string; version: string; file: string; elf: string }[];
  bundle: { file: string; bytes: number; packages: string[] };
  /** The glibc / libstdc++ symbol versions required: per ELF file (relative to /opt/trustroll), the highest over them, and the target's documented floor. */
  libc: { files: Record<string, Partial<LibcFloor>>; needs: Partial<LibcFloor>; floor: LibcFloor | null };
  /** Every component with its licence (their texts are in LEGAL.txt). */
  components: { name: string; version: string; license: string }[];
}

/** The result of one target's build. */
export interface CrossBuild {
  target: Target;
  /** The /opt/trustroll tree. */
  root: string;
  info: BuildInfo;
  addons: BuiltAddon[];
  /** Everything the tree is made of, with its licence texts (LEGAL.txt) and hashes (for the SBOM). */
  components: Component[];
  source: SourceState;
  seconds: number;
}

/** Where and from what a cross-compile builds. */
export interface CrossOptions {
  /** Output folder for this target (default cross-compile/out/<arch>). */
  out?: string;
  /** The commit and time stamp (default: this checkout's, or SOURCE_DATE_EPOCH). */
  source?: SourceState;
}

/** The launcher installed as /opt/trustroll/bin/trustroll-agent (and linked from /usr/bin), for the target's runtime. */
export const launcher = (target: Target): string => `#!/bin/sh
# trustroll-agent: runs the agent bundle on the runtime shipped beside it.
# NODE_OPTIONS=--enable-source-maps gives stack traces in source terms.
here=$(dirname "$(readlink -f "$0")")
# The V8 flags and this environment keep the idle agent small (/opt/trustroll/share/doc/README.md, "Memory").
${Object.entries(AGENT_ENV).map(([k, v]) => `export ${k}="\${${k}:-${v}}"`).join('\n')}
exec "$here/node" ${agentNodeFlags(target.runtime.version).join(' ')} "$here/../lib/${BUNDLE_FILE}" "$@"
`;

/** Builds the target's tree (reusing cached native builds); returns where it is. */
export async function crossCompile(target: Target, log: (line: string) => void = () => {}, opts: CrossOptions = {}): Promise<CrossBuild> {
  const started = Date.now();
  const out = opts.out ?? join(OUT_DIR, target.arch);
  const source = opts.source ?? sourceState();
  const runtime = fetchRuntime(target.runtime);
  const addons = buildAddons(target, runtime, addonCache(target.arch), log);
  const bundle = await bundleAgent(join(out, 'bundle'), source);

  const root = join(out, 'trustroll');
  rmSync(root, { recursive: true, force: true });
  for (const d of ['bin', `lib/${ADDON_DIR}`, 'share']) mkdirSync(join(root, d), { recursive: true });
  const node = join(root, 'bin', 'node');
  copyFileSync(runtime.node, node);
  const strip = spawnSync(`${target.toolchain}-strip`, ['--strip-all', node], { encoding: 'utf8' });
  if (strip.status !== 0) throw new BuildError('E_BUILD_TOOL', `${target.toolchain}-strip: ${strip.stderr.trim() || 'not found'}; install ${target.toolchainPackages.join(' ')}`);
  chmodSync(node, 0o755);
  writeFileSync(join(root, 'bin', 'trustroll-agent'), launcher(target), { mode: 0o755 });
  for (const f of [BUNDLE_FILE, `${BUNDLE_FILE}.map`]) copyFileSync(join(out, 'bundle', f), join(root, 'lib', f));
  const elf: Record<string, string> = {};
  for (const a of addons) {
    copyFileSync(a.path, join(root, 'lib', ADDON_DIR, a.file));
    const r = spawnSync('readelf', ['-h', a.path], { encoding: 'utf8' });
    elf[a.file] = `${/Machine:\s+(.*)/.exec(r.stdout)?.[1]?.trim()}; ${/Flags:\s+(.*)/.exec(r.stdout)?.[1]?.trim()}`;
  }
  writeFileSync(join(root, 'share', 'agent-config.schema.json'), JSON.stringify(agentConfigJsonSchema(), null, 2) + '\n');

  // The C library floor: what the runtime and the addons require, checked against the documented one.
  const elfFiles = ['bin/node', ...addons.map((a) => `lib/${ADDON_DIR}/${a.file}`)];
  const measured = elfFiles.map((rel) => ({ ...measureElf(join(root, rel), target), file: rel }));
  if (target.libcFloor) checkFloor(measured, target.libcFloor, `${target.arch} (documented floor: cross-compile/targets.ts, image/README.md)`);

  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  const components = collectComponents(target, runtime.dir, bundle.inputs.packageDirs, addons, pkg.version);
  writeFileSync(join(root, LEGAL_FILE), legalNotice(`trustroll-agent ${pkg.version} for linux-${target.arch}`, components, bundle.legalComments));

  const modules = readFileSync(join(runtime.headers, 'node_version.h'), 'utf8').match(/#define NODE_MODULE_VERSION (\d+)/)?.[1] ?? 'unknown';
  const info: BuildInfo = {
    name: 'trustroll-agent',
    version: pkg.version,
    source: { commit: source.commit, dirty: source.dirty, date: new Date(source.epoch * 1000).toISOString() },
    arch: target.arch,
    nodeArch: target.nodeArch,
    runtime: { package: target.runtime.name, version: target.runtime.version, modules, support: target.support },
    addons: addons.map((a) => ({ pkg: a.pkg, version: a.version, file: `lib/${ADDON_DIR}/${a.file}`, elf: elf[a.file]! })),
    bundle: { file: `lib/${BUNDLE_FILE}`, bytes: statSync(join(root, 'lib', BUNDLE_FILE)).size, packages: bundle.inputs.packages },
    libc: { files: Object.fromEntries(measured.map((m) => [m.file, m.needs])), needs: floorOf(measured), floor: target.libcFloor },
    components: components.map((c) => ({ name: c.name, version: c.version, license: c.license })),
  };
  writeFileSync(join(root, 'build-info.json'), JSON.stringify(info, null, 2) + '\n');
  return { target, root, info, addons, components, source, seconds: (Date.now() - started) / 1000 };
}

/** trustroll, the runtime, the bundled packages (the addons' files added to theirs) and SQLite inside better-sqlite3's addon. */
function collectComponents(target: Target, runtimeDir: string, packageDirs: string[], addons: BuiltAddon[], version: string): Component[] {
  const bundleFiles = [`lib/${BUNDLE_FILE}`, `lib/${BUNDLE_FILE}.map`];
  const npm = npmComponents(packageDirs, bundleFiles);
  const embedded: Component[] = [];
  for (const a of addons) {
    const addonFile = `lib/${ADDON_DIR}/${a.file}`;
    let c = npm.find((n) => n.name === a.pkg);
    if (!c) npm.push(c = { ...npmComponents([`node_modules/${a.pkg}`], [])[0]! });
    c.files.push(addonFile);
    if (a.pkg === 'better-sqlite3') embedded.push(sqliteComponent(join(REPO_ROOT, 'node_modules', a.pkg), addonFile));
  }
  npm.sort((x, y) => x.name.localeCompare(y.name) || x.version.localeCompare(y.version));
  return [trustrollComponent(version), runtimeComponent(target.runtime, runtimeDir), ...npm, ...embedded];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const { values } = parseArgs({ options: { arch: { type: 'string' }, json: { type: 'boolean', default: false } } });
    const build = await crossCompile(targetOf(values.arch), (l) => process.stderr.write(`${l}\n`));
    const summary = { arch: build.target.arch, root: build.root, seconds: build.seconds, runtime: build.info.runtime, bundleBytes: build.info.bundle.bytes, addons: build.addons.map((a) => ({ pkg: a.pkg, cached: a.cached, seconds: a.seconds })) };
    process.stdout.write(values.json ? JSON.stringify(summary) + '\n' : `cross-compile ${summary.arch}: ${summary.root} in ${summary.seconds.toFixed(1)} s (Node ${summary.runtime.version}, bundle ${summary.bundleBytes} bytes; addons ${summary.addons.map((a) => `${a.pkg} ${a.cached ? 'cached' : `built in ${a.seconds.toFixed(0)} s`}`).join(', ')})\n`);
  } catch (err) {
    process.stderr.write(`cross-compile: ${(err as Error).message}\n`);
    process.exitCode = err instanceof BuildError && err.code === 'E_BUILD_ARCH' ? 2 : 1;
  }
}
