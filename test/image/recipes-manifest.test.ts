/**
 * The recipes and the manifest agree: each recipe's install commands
 * (Buildroot's `define … endef` blocks, Yocto's `do_install`, with the
 * build system's variables filled in for each init system and unit folder
 * they know) run against an overlay laid out by image/build.ts with its
 * manifest; then `sha256sum -c` of /opt/trustroll/MANIFEST.sha256, run in
 * the installed root as on the device, passes, and every regular file the
 * recipe installed is one the manifest names (links are the recipes' own:
 * the init script's start link, the unit's link into a non-usrmerge unit
 * folder). Runs everywhere (no cross-compile).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../cross-compile/paths.ts';
import { MANIFEST, manifestText, placeOverlayFiles } from '../../image/build.ts';

const pkgVersion = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const MK = join(REPO_ROOT, 'image/recipes/buildroot/trustroll-agent/trustroll-agent.mk');
const BB = join(REPO_ROOT, 'image/recipes/yocto', `trustroll-agent_${pkgVersion}.bb`);

/** Regular files under `root` (symlinks not followed), relative. */
const walk = (root: string, dir = ''): string[] => readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
  const rel = dir ? `${dir}/${e.name}` : e.name;
  return e.isDirectory() ? walk(root, rel) : e.isFile() ? [rel] : [];
});

/** An overlay as image/build.ts lays it out, with a stand-in runtime tree under /opt/trustroll, and its manifest. */
function overlay(dir: string): string {
  const root = join(dir, 'overlay');
  for (const [rel, text, mode] of [['opt/trustroll/bin/node', 'ELF', 0o755], ['opt/trustroll/bin/trustroll-agent', '#!/bin/sh\n', 0o755], ['opt/trustroll/lib/trustroll-agent.mjs', 'x', 0o644], ['opt/trustroll/LEGAL.txt', 'legal', 0o644]] as const) {
    mkdirSync(join(root, rel, '..'), { recursive: true });
    writeFileSync(join(root, rel), text);
    chmodSync(join(root, rel), mode);
  }
  placeOverlayFiles(root);
  const files = new Map(walk(root).sort().map((rel) => [rel, createHash('sha256').update(readFileSync(join(root, rel))).digest('hex')] as const));
  writeFileSync(join(root, MANIFEST), manifestText(files));
  return root;
}

/** Run shell `script` (the recipe's commands, variables filled in); fails the test with its output. */
function sh(script: string): void {
  const r = spawnSync('sh', ['-ec', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${script}\n${r.stdout}${r.stderr}`);
}

/** The device's check in `target`, and no installed file the manifest leaves out. */
function agrees(target: string, what: string): void {
  const lines = readFileSync(join(target, MANIFEST), 'utf8').trim().split('\n');
  const named = lines.map((l) => l.replace(/^[0-9a-f]{64} {2}\//, ''));
  const relManifest = join(target, '..', 'manifest.rel');
  writeFileSync(relManifest, named.map((rel, i) => `${lines[i]!.slice(0, 64)}  ${rel}\n`).join(''));
  const r = spawnSync('sha256sum', ['-c', '--quiet', relManifest], { cwd: target, encoding: 'utf8' });
  assert.equal(r.status, 0, `${what}: sha256sum -c /${MANIFEST} fails on the installed tree:\n${r.stdout}${r.stderr}`);
  const extra = walk(target).filter((rel) => rel !== MANIFEST && !named.includes(rel));
  assert.deepEqual(extra, [], `${what}: installed files the manifest does not name`);
}

/** The body of `define NAME … endef` in a Buildroot .mk. */
function mkBlock(mk: string, name: string): string {
  const m = new RegExp(`^define ${name}\\n([\\s\\S]*?)^endef`, 'm').exec(mk);
  return m ? m[1]!.replace(/^\t/gm, '') : '';
}

describe('image recipes: what they install is what /opt/trustroll/MANIFEST.sha256 names', () => {
  let dir = '';
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'trustroll-recipes-')); });
  afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

  for (const init of ['SYSV', 'SYSTEMD'] as const) {
    it(`Buildroot, ${init === 'SYSV' ? 'BusyBox init: sha256sum -c passes on the target, the init script starts at boot' : 'systemd: sha256sum -c passes on the target'}`, () => {
      const src = overlay(dir);
      const target = join(dir, 'target');
      mkdirSync(target);
      const mk = readFileSync(MK, 'utf8');
      const script = [mkBlock(mk, 'TRUSTROLL_AGENT_INSTALL_TARGET_CMDS'), mkBlock(mk, `TRUSTROLL_AGENT_INSTALL_INIT_${init}`)].join('\n')
        .replace(/^\s*#.*$/gm, '').replaceAll('$(@D)', src).replaceAll('$(TARGET_DIR)', target).replaceAll('$(INSTALL)', 'install');
      assert.doesNotMatch(script, /\$\(/, 'every make variable filled in');
      sh(script);
      agrees(target, `Buildroot ${init}`);
      if (init === 'SYSV') {
        // BusyBox's rcS runs /etc/init.d/S??* (following links).
        const starts = readdirSync(join(target, 'etc/init.d')).filter((n) => /^S\d\d/.test(n));
        assert.equal(starts.length, 1, 'one start script');
        assert.ok(statSync(join(target, 'etc/init.d', starts[0]!)).mode & 0o111, 'it runs');
        assert.equal(readFileSync(join(target, 'etc/init.d', starts[0]!), 'utf8'), readFileSync(join(src, 'etc/init.d/trustroll-agent'), 'utf8'));
      }
    });
  }

  for (const [unitdir, systemd, sysvinit] of [['/usr/lib/systemd/system', 'true', 'false'], ['/lib/systemd/system', 'true', 'false'], ['/lib/systemd/system', 'false', 'true'], ['/usr/lib/systemd/system', 'true', 'true']] as const) {
    it(`Yocto, systemd_system_unitdir ${unitdir}${systemd === 'true' ? ', systemd' : ''}${sysvinit === 'true' ? ', sysvinit' : ''}: sha256sum -c passes in the package, the unit is where systemd.bbclass looks`, () => {
      const src = overlay(dir);
      const d = join(dir, 'image');
      mkdirSync(d);
      const bb = readFileSync(BB, 'utf8');
      const body = /^do_install\(\) \{\n([\s\S]*?)^\}/m.exec(bb)?.[1] ?? '';
      assert.ok(body.trim(), 'do_install found');
      const script = body.replace(/^\s*#.*$/gm, '')
        .replace(/\$\{@bb\.utils\.contains\('DISTRO_FEATURES', '(\w+)', 'true', 'false', d\)\}/g, (_m, f: string) => (f === 'systemd' ? systemd : f === 'sysvinit' ? sysvinit : 'false'))
        .replaceAll('${S}', src).replaceAll('${D}', d).replaceAll('${systemd_system_unitdir}', unitdir).replaceAll('${sysconfdir}', '/etc');
      assert.doesNotMatch(script, /\$\{/, 'every BitBake variable filled in');
      sh(script);
      agrees(d, `Yocto ${unitdir}`);
      if (systemd === 'true') assert.ok(existsSync(join(d, unitdir, 'trustroll-agent.service')), `${unitdir}/trustroll-agent.service (systemd.bbclass fails the build without it)`);
      assert.match(bb, /^INHIBIT_PACKAGE_STRIP = "1"$/m, 'the package step must not strip the prebuilt binaries (their hashes are in the manifest)');
    });
  }
});
