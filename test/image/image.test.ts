/**
 * The firmware image per arch (`npm run image -- --arch …`): the tarball's
 * SHA-256 manifest, the init script and the systemd unit, the addons and
 * the runtime as ELF for the right CPU, the published config schema, the
 * legal notice and the SBOM covering every bundled package (and the
 * recipes declaring them), and the agent from the unpacked tarball under
 * qemu: --version naming the commit, a config that fails the schema stops
 * it naming the field, status of an unprovisioned device. Runs in CI
 * (arm64) and wherever the cross-compile cache is warm.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, lstatSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Ajv } from 'ajv';
import { agentConfigSchema, checkAgentConfig } from '../../agent/config.ts';
import { REPO_ROOT } from '../../cross-compile/paths.ts';
import { TARGETS, type Target } from '../../cross-compile/targets.ts';
import type { ImageBuild } from '../../image/build.ts';
import { MANIFEST } from '../../image/build.ts';
import { AGENT_ENV, agentNodeFlags } from '../../cross-compile/bundle.ts';
import { describeSource } from '../../cross-compile/source.ts';
import { recipeValues } from '../../image/recipe-values.ts';
import { SBOM, type SpdxDocument } from '../../image/sbom.ts';
import { emulatedAgent, emulatedNode } from '../../image/emulate.ts';
import { imageFor, imageTestSkipReason, unpack } from './support.ts';

const pkgVersion = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const run = (cl: { command: string; args: string[] }, timeout = 120_000) => spawnSync(cl.command, cl.args, { encoding: 'utf8', timeout });

const walk = (root: string, dir = ''): string[] => readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
  const rel = dir ? `${dir}/${e.name}` : e.name;
  return e.isDirectory() ? walk(root, rel) : [rel];
});

for (const target of Object.values(TARGETS) as Target[]) {
  describe(`image ${target.arch} (Node ${target.runtime.version})`, function () {
    this.timeout(20 * 60_000);
    let img: ImageBuild;
    let root: string;

    before(async function () {
      const skip = imageTestSkipReason(target);
      if (skip) {
        process.stderr.write(`      skipped: ${skip}\n`);
        this.skip();
      }
      img = await imageFor(target);
      root = unpack(img.tarball);
    });
    after(() => { if (root) rmSync(root, { recursive: true, force: true }); });

    it('is a versioned tarball whose SHA-256 manifest lists every file with its hash', () => {
      assert.equal(basename(img.tarball), `trustroll-agent-${pkgVersion}-linux-${target.arch}.tar.gz`);
      const tarSha = createHash('sha256').update(readFileSync(img.tarball)).digest('hex');
      assert.equal(readFileSync(`${img.tarball}.sha256`, 'utf8'), `${tarSha}  ${basename(img.tarball)}\n`);
      const lines = readFileSync(join(root, MANIFEST), 'utf8').trim().split('\n');
      const listed = new Map(lines.map((l) => { const m = /^([0-9a-f]{64}) {2}\/(.+)$/.exec(l); assert.ok(m, `manifest line "${l}"`); return [m[2]!, m[1]!] as const; }));
      const files = walk(root).filter((rel) => lstatSync(join(root, rel)).isFile() && rel !== MANIFEST).sort();
      assert.deepEqual([...listed.keys()].sort(), files);
      for (const rel of files) assert.equal(listed.get(rel), createHash('sha256').update(readFileSync(join(root, rel))).digest('hex'), rel);
      // A flipped byte is caught the way a device checks it: sha256sum -c.
      const copy = mkdtempSync(join(tmpdir(), 'trustroll-manifest-'));
      try {
        writeFileSync(join(copy, 'm'), lines.map((l) => l.replace('  /', `  ${root}/`)).join('\n') + '\n');
        assert.equal(spawnSync('sha256sum', ['--quiet', '-c', join(copy, 'm')]).status, 0);
        const bundle = join(root, 'opt/trustroll/lib/trustroll-agent.mjs');
        const saved = readFileSync(bundle);
        const bad = Buffer.from(saved);
        bad.writeUInt8(bad.readUInt8(100) ^ 1, 100);
        writeFileSync(bundle, bad);
        assert.notEqual(spawnSync('sha256sum', ['--quiet', '-c', join(copy, 'm')]).status, 0);
        writeFileSync(bundle, saved);
      } finally {
        rmSync(copy, { recursive: true, force: true });
      }
      if (img.squashfs) assert.ok(readFileSync(`${img.squashfs}.sha256`, 'utf8').startsWith(createHash('sha256').update(readFileSync(img.squashfs)).digest('hex')));
    });

    it('lays out runtime, bundle, addons, config template, state folder, unit, init script and the PATH entry', () => {
      for (const f of ['opt/trustroll/bin/node', 'opt/trustroll/bin/trustroll-agent', 'opt/trustroll/lib/trustroll-agent.mjs', 'opt/trustroll/lib/trustroll-agent.mjs.map',
        'opt/trustroll/lib/addons/better_sqlite3.node', 'opt/trustroll/lib/addons/pkcs11.node', 'opt/trustroll/share/agent-config.schema.json',
        'opt/trustroll/share/agent.json.example', 'opt/trustroll/build-info.json', 'opt/trustroll/LEGAL.txt', 'opt/trustroll/share/sbom.spdx.json',
        'usr/lib/systemd/system/trustroll-agent.service', 'etc/init.d/trustroll-agent']) {
        assert.ok(lstatSync(join(root, f)).isFile(), f);
      }
      assert.equal(readlinkSync(join(root, 'usr/bin/trustroll-agent')), '../../opt/trustroll/bin/trustroll-agent');
      assert.equal(lstatSync(join(root, 'var/lib/trustroll')).mode & 0o777, 0o700);
      assert.ok(lstatSync(join(root, 'etc/trustroll')).isDirectory());
      const info = JSON.parse(readFileSync(join(root, 'opt/trustroll/build-info.json'), 'utf8')) as { version: string; arch: string; runtime: { version: string; support: string }; source: { commit: string; dirty: boolean }; builtAt?: string };
      assert.equal(info.version, pkgVersion);
      // The commit it was built from: this checkout's HEAD or, if a commit landed since the build, one of its ancestors.
      assert.match(info.source.commit, /^[0-9a-f]{40}$/);
      assert.equal(spawnSync('git', ['merge-base', '--is-ancestor', info.source.commit, 'HEAD'], { cwd: REPO_ROOT }).status, 0, `${info.source.commit} is in this checkout's history`);
      assert.equal(typeof info.source.dirty, 'boolean');
      assert.equal(info.builtAt, undefined, 'no wall-clock time');
      assert.equal(info.arch, target.arch);
      assert.equal(info.runtime.version, target.runtime.version);
    });

    it('has addons and runtime that are ELF for the target CPU', () => {
      for (const f of ['opt/trustroll/lib/addons/better_sqlite3.node', 'opt/trustroll/lib/addons/pkcs11.node', 'opt/trustroll/bin/node']) {
        const h = spawnSync('readelf', ['-h', join(root, f)], { encoding: 'utf8' });
        assert.equal(h.status, 0, h.stderr);
        assert.equal(/Machine:\s+(.*)/.exec(h.stdout)?.[1]?.trim(), target.elfMachine, f);
        if (target.elfFlags) assert.match(/Flags:\s+(.*)/.exec(h.stdout)?.[1] ?? '', target.elfFlags, f);
      }
    });

    it('has an init script that passes sh -n and a unit that passes systemd-analyze verify where it exists', function () {
      const init = join(root, 'etc/init.d/trustroll-agent');
      const n = spawnSync('sh', ['-n', init], { encoding: 'utf8' });
      assert.equal(n.status, 0, n.stderr);
      // The launcher: valid sh, with the Node flags and the environment the memory numbers were measured with.
      const launcher = join(root, 'opt/trustroll/bin/trustroll-agent');
      assert.equal(spawnSync('sh', ['-n', launcher]).status, 0);
      const launcherText = readFileSync(launcher, 'utf8');
      assert.ok(launcherText.includes(`"$here/node" ${agentNodeFlags(target.runtime.version).join(' ')} `), 'launcher flags');
      for (const [k, v] of Object.entries(AGENT_ENV)) assert.ok(launcherText.includes(`export ${k}="\${${k}:-${v}}"`), k);
      const unitText = readFileSync(join(root, 'usr/lib/systemd/system/trustroll-agent.service'), 'utf8');
      for (const d of ['Restart=on-failure', 'NoNewPrivileges=true', 'ProtectSystem=strict', 'StateDirectory=trustroll', 'ExecStart=/opt/trustroll/bin/trustroll-agent run --config /etc/trustroll/agent.json']) assert.ok(unitText.includes(d), d);
      if (spawnSync('systemd-analyze', ['--version']).error) return;
      // Verified as installed, with ExecStart pointing at the unpacked launcher (systemd-analyze checks it exists).
      const dir = mkdtempSync(join(tmpdir(), 'trustroll-unit-'));
      try {
        const unit = join(dir, 'trustroll-agent.service');
        writeFileSync(unit, unitText.replace('ExecStart=/opt/trustroll/', `ExecStart=${root}/opt/trustroll/`));
        const v = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
        assert.equal(v.status, 0, v.stderr);
        assert.doesNotMatch(v.stderr, /trustroll-agent\.service.*(Unknown|Invalid|Failed|ignoring)/i);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('carries the licence text and an SBOM entry of every bundled package, and the recipes declare them', () => {
      const legal = readFileSync(join(root, 'opt/trustroll/LEGAL.txt'));
      const text = legal.toString('utf8');
      const sbom = JSON.parse(readFileSync(join(root, SBOM), 'utf8')) as SpdxDocument;
      assert.equal(sbom.spdxVersion, 'SPDX-2.3');
      assert.equal(readFileSync(img.sbom, 'utf8'), readFileSync(join(root, SBOM), 'utf8'), 'the SBOM beside the tarball');
      const fileHash = (rel: string) => sbom.files.find((f) => f.fileName === `./${rel}`)?.checksums.find((c) => c.algorithm === 'SHA256')?.checksumValue;
      // Every package esbuild bundled (build-info's list comes from the metafile), the runtime and the addons' packages.
      const names = [...img.info.bundle.packages, target.runtime.name, ...img.info.addons.map((a) => a.pkg), 'sqlite'];
      for (const name of names) {
        const c = img.info.components.find((x) => x.name === name);
        assert.ok(c, `${name} is a component`);
        assert.ok(text.includes(`\n${c.name} ${c.version}\nLicence: ${c.license}\n`), `${name}: LEGAL.txt section`);
        const p = sbom.packages.find((x) => x.name === name && x.versionInfo === c.version);
        assert.ok(p, `${name}: SBOM entry`);
        assert.equal(p.licenseConcluded, c.license, `${name}: SBOM licence`);
        assert.ok(p.checksums?.[0]?.checksumValue.match(/^[0-9a-f]{64,128}$/), `${name}: SBOM hash`);
      }
      // Each shipped file's SHA-256, as the manifest has it, and the bundle made from every package.
      for (const [rel, sha] of img.manifest) if (rel !== SBOM) assert.equal(fileHash(rel), sha, rel);
      const bundleId = sbom.files.find((f) => f.fileName === './opt/trustroll/lib/trustroll-agent.mjs')!.SPDXID;
      for (const name of img.info.bundle.packages) {
        const p = sbom.packages.find((x) => x.name === name)!;
        assert.ok(sbom.relationships.some((r) => r.spdxElementId === bundleId && r.relationshipType === 'GENERATED_FROM' && r.relatedSpdxElement === p.SPDXID), name);
      }
      // The recipes: Yocto's LICENSE and LEGAL.txt md5 for this CPU, Buildroot's licences and the hash file of this CPU.
      const v = recipeValues(img.info.components, legal);
      const bb = readFileSync(join(REPO_ROOT, 'image/recipes/yocto', `trustroll-agent_${pkgVersion}.bb`), 'utf8');
      const mk = readFileSync(join(REPO_ROOT, 'image/recipes/buildroot/trustroll-agent/trustroll-agent.mk'), 'utf8');
      const hash = readFileSync(join(REPO_ROOT, 'image/recipes/buildroot/trustroll-agent', `${pkgVersion}-${target.arch}`, 'trustroll-agent.hash'), 'utf8');
      const want = [`LICENSE = "${v.yoctoLicense}"`, `TRUSTROLL_LEGAL_MD5:${target.arch === 'arm64' ? 'aarch64' : 'arm'} = "${v.legalMd5}"`, `TRUSTROLL_AGENT_LICENSE = ${v.buildrootLicense}`, `sha256  ${v.legalSha256}  opt/trustroll/LEGAL.txt`];
      assert.deepEqual(want.filter((line) => ![bb, mk, hash].some((f) => f.includes(`${line}\n`))), [], 'lines the recipes must have for this image');
      assert.match(bb, /LIC_FILES_CHKSUM = "file:\/\/opt\/trustroll\/LEGAL\.txt;md5=\$\{TRUSTROLL_LEGAL_MD5\}"/);
      assert.match(mk, /TRUSTROLL_AGENT_LICENSE_FILES = opt\/trustroll\/LEGAL\.txt\n/);
      assert.doesNotMatch(bb, /INSANE_SKIP.*file-rdeps/, 'the glibc floor is not hidden from Yocto\'s file-rdeps check');
      assert.doesNotMatch(bb, /set-me/, 'no placeholder');
    });

    it('publishes the schema the agent checks with, and its config template passes it', () => {
      const published = JSON.parse(readFileSync(join(root, 'opt/trustroll/share/agent-config.schema.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(published.properties, JSON.parse(JSON.stringify(agentConfigSchema.properties)));
      assert.deepEqual(published.required, [...agentConfigSchema.required]);
      const example = JSON.parse(readFileSync(join(root, 'opt/trustroll/share/agent.json.example'), 'utf8')) as unknown;
      const validate = new Ajv({ strict: false, discriminator: true }).compile(published);
      assert.ok(validate(example), JSON.stringify(validate.errors));
      checkAgentConfig(example);
      assert.equal(validate({ ...(example as object), role: 'printer' }), false);
    });

    it('runs under qemu: --version naming the commit, and a config that fails the schema stops the agent naming the setting', () => {
      const v = run(emulatedAgent(target, root, ['--version']));
      assert.equal(v.status, 0, v.stderr);
      assert.equal(v.stdout.trim(), `${pkgVersion} (${describeSource(img.info.source)})`);
      assert.match(v.stdout, /^\d+\.\d+\.\d+ \(commit [0-9a-f]{12}(, dirty)?\)\n$/);
      assert.equal(v.stderr, '', 'the launcher\'s flags start this runtime without a warning');
      const node = run(emulatedNode(target, root, ['-p', 'process.arch + " " + process.version']));
      assert.equal(node.stdout.trim(), `${target.nodeArch} v${target.runtime.version}`);
      const dir = mkdtempSync(join(tmpdir(), 'trustroll-badcfg-'));
      try {
        const example = JSON.parse(readFileSync(join(root, 'opt/trustroll/share/agent.json.example'), 'utf8')) as Record<string, unknown>;
        const cases: [string, Record<string, unknown>, RegExp][] = [
          ['role', { ...example, role: 'printer' }, /setting "role"/],
          ['tls.port', { ...example, tls: { host: '0.0.0.0', port: 70000 } }, /setting "tls\.port"/],
          ['unknown', { ...example, colour: 'blue' }, /unknown setting "colour"/],
        ];
        for (const [name, config, want] of cases) {
          const file = join(dir, `${name}.json`);
          writeFileSync(file, JSON.stringify(config));
          const r = run(emulatedAgent(target, root, ['run', '--config', file]));
          assert.equal(r.status, 78, `${name}: ${r.stderr}`);
          assert.match(r.stderr, want);
          assert.match(r.stderr, /E_AGENT_CONFIG/);
          assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
        }
        // The unprovisioned device: status names what to do, creates nothing.
        const cfg = { ...example, hal: { keys: { backend: 'file', dir: join(dir, 'keys') }, records: { backend: 'file', dir: join(dir, 'records') } }, store: { kind: 'sqlite', path: join(dir, 'store.db') } };
        copyFileSync(join(root, 'opt/trustroll/share/agent.json.example'), join(dir, 'template.json'));
        writeFileSync(join(dir, 'agent.json'), JSON.stringify(cfg));
        const st = run(emulatedAgent(target, root, ['status', '--config', join(dir, 'agent.json')]));
        assert.notEqual(st.status, 0);
        assert.match(st.stderr, /E_AGENT_NOT_PROVISIONED|provision/);
        assert.deepEqual(readdirSync(dir).sort(), ['agent.json', 'role.json', 'template.json', 'tls.port.json', 'unknown.json']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
