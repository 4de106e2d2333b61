/**
 * `npm run cross-compile -- --arch arm64|armv7`: the agent for one CPU, laid
 * out as it is installed on the device (/opt/trustroll), in
 * cross-compile/out/<arch>/trustroll/:
 *
 *   bin/node                    the target's Node runtime (official build, stripped)
 *   bin/trustroll-agent         sh launcher (what the technician runs)
 *   lib/trustroll-agent.mjs     the agent bundle (+ .map, .LEGAL.txt)
 *   lib/addons/*.node           better-sqlite3 and pkcs11js for the target
 *   share/agent-config.schema.json
 *   build-info.json             versions, the runtime's support status, sizes
 *
 * Native builds are cached and reused while their inputs are unchanged.
 */
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { buildAddons, type BuiltAddon } from './addons.ts';
import { ADDON_DIR, AGENT_ENV, agentNodeFlags, BUNDLE_FILE, bundleAgent } from './bundle.ts';
import { agentConfigJsonSchema } from './config-schema.ts';
import { BuildError } from './errors.ts';
import { addonCache, OUT_DIR, REPO_ROOT } from './paths.ts';
import { fetchRuntime } from './runtime.ts';
import { targetOf, type Target } from './targets.ts';

/** What `build-info.json` holds. */
export interface BuildInfo {
  name: 'trustroll-agent';
  version: string;
  arch: Target['arch'];
  nodeArch: Target['nodeArch'];
  runtime: { package: string; version: string; modules: string; support: string };
  addons: { pkg: string; version: string; file: string; elf: string }[];
  bundle: { file: string; bytes: number; packages: string[] };
  builtAt: string;
}

/** The result of one target's build. */
export interface CrossBuild {
  target: Target;
  /** The /opt/trustroll tree. */
  root: string;
  info: BuildInfo;
  addons: BuiltAddon[];
  seconds: number;
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
export async function crossCompile(target: Target, log: (line: string) => void = () => {}): Promise<CrossBuild> {
  const started = Date.now();
  const out = join(OUT_DIR, target.arch);
  const runtime = fetchRuntime(target.runtime);
  const addons = buildAddons(target, runtime, addonCache(target.arch), log);
  const bundle = await bundleAgent(join(out, 'bundle'));

  const root = join(out, 'trustroll');
  rmSync(root, { recursive: true, force: true });
  for (const d of ['bin', `lib/${ADDON_DIR}`, 'share/licenses']) mkdirSync(join(root, d), { recursive: true });
  const node = join(root, 'bin', 'node');
  copyFileSync(runtime.node, node);
  const strip = spawnSync(`${target.toolchain}-strip`, ['--strip-all', node], { encoding: 'utf8' });
  if (strip.status !== 0) throw new BuildError('E_BUILD_TOOL', `${target.toolchain}-strip: ${strip.stderr.trim() || 'not found'}; install ${target.toolchainPackages.join(' ')}`);
  chmodSync(node, 0o755);
  writeFileSync(join(root, 'bin', 'trustroll-agent'), launcher(target), { mode: 0o755 });
  for (const f of [BUNDLE_FILE, `${BUNDLE_FILE}.map`, `${BUNDLE_FILE}.LEGAL.txt`]) {
    if (existsSync(join(out, 'bundle', f))) copyFileSync(join(out, 'bundle', f), join(root, 'lib', f));
  }
  const elf: Record<string, string> = {};
  for (const a of addons) {
    copyFileSync(a.path, join(root, 'lib', ADDON_DIR, a.file));
    const r = spawnSync('readelf', ['-h', a.path], { encoding: 'utf8' });
    elf[a.file] = `${/Machine:\s+(.*)/.exec(r.stdout)?.[1]?.trim()}; ${/Flags:\s+(.*)/.exec(r.stdout)?.[1]?.trim()}`;
  }
  writeFileSync(join(root, 'share', 'agent-config.schema.json'), JSON.stringify(agentConfigJsonSchema(), null, 2) + '\n');
  copyFileSync(join(runtime.dir, 'LICENSE'), join(root, 'share', 'licenses', 'node.LICENSE'));
  for (const a of addons) {
    const lic = join(REPO_ROOT, 'node_modules', a.pkg, 'LICENSE');
    if (existsSync(lic)) copyFileSync(lic, join(root, 'share', 'licenses', `${a.pkg}.LICENSE`));
  }
  const modules = readFileSync(join(runtime.headers, 'node_version.h'), 'utf8').match(/#define NODE_MODULE_VERSION (\d+)/)?.[1] ?? 'unknown';
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  const info: BuildInfo = {
    name: 'trustroll-agent',
    version: pkg.version,
    arch: target.arch,
    nodeArch: target.nodeArch,
    runtime: { package: target.runtime.name, version: target.runtime.version, modules, support: target.support },
    addons: addons.map((a) => ({ pkg: a.pkg, version: a.version, file: `lib/${ADDON_DIR}/${a.file}`, elf: elf[a.file]! })),
    bundle: { file: `lib/${BUNDLE_FILE}`, bytes: statSync(join(root, 'lib', BUNDLE_FILE)).size, packages: bundle.inputs.packages },
    builtAt: new Date().toISOString(),
  };
  writeFileSync(join(root, 'build-info.json'), JSON.stringify(info, null, 2) + '\n');
  return { target, root, info, addons, seconds: (Date.now() - started) / 1000 };
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
