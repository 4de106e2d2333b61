/**
 * Licences, SBOM and reproducible packing, without building an image (fast:
 * runs everywhere): every package esbuild bundles becomes a component with
 * its licence text (a package that ships none stops the build), the SPDX
 * document lists each with version, licence and hash and ties the shipped
 * files to it (one left out is caught), the recipes' licence values, the
 * build's commit and SOURCE_DATE_EPOCH, and tar/mksquashfs output that
 * carries the given epoch and is the same bytes twice.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Metafile } from 'esbuild';
import { bundleAgent, checkAgentInputs, packageDirOf, type BundleResult } from '../../cross-compile/bundle.ts';
import { BuildError } from '../../cross-compile/errors.ts';
import { checkLicences, legalNotice, npmComponents, sqliteComponent, trustrollComponent, type Component } from '../../cross-compile/licenses.ts';
import { REPO_ROOT } from '../../cross-compile/paths.ts';
import { describeSource, sourceState } from '../../cross-compile/source.ts';
import { mksquashfsVersion, normaliseTree, packSquashfs, packTarball, squashfsTime } from '../../image/pack.ts';
import { recipeValues } from '../../image/recipe-values.ts';
import { checkSbom, spdxDocument, type FileHashes } from '../../image/sbom.ts';

const meta = (...inputs: string[]): Metafile => ({ inputs: Object.fromEntries(inputs.map((i) => [i, { bytes: 1, imports: [] }])), outputs: {} });
const isCode = (code: string) => (e: unknown) => e instanceof BuildError && e.code === code;
const BUNDLE_FILES = ['lib/trustroll-agent.mjs', 'lib/trustroll-agent.mjs.map'];
const hashesOf = (text: string): FileHashes => ({ sha1: createHash('sha1').update(text).digest('hex'), sha256: createHash('sha256').update(text).digest('hex') });

describe('licences and SBOM of the agent bundle', function () {
  this.timeout(120_000);
  let dir = '';
  let bundle: BundleResult;
  let components: Component[];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-licences-'));
    bundle = await bundleAgent(join(dir, 'bundle'));
    components = [trustrollComponent('0.1.0'), ...npmComponents(bundle.inputs.packageDirs, BUNDLE_FILES), sqliteComponent(join(REPO_ROOT, 'node_modules', 'better-sqlite3'), 'lib/addons/better_sqlite3.node')];
  });
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  it('maps every bundled input to its innermost package, nested copies included', () => {
    assert.equal(packageDirOf('node_modules/mqtt/node_modules/lru-cache/dist/esm/index.js'), 'node_modules/mqtt/node_modules/lru-cache');
    assert.equal(packageDirOf('node_modules/@scope/pkg/lib/a.js'), 'node_modules/@scope/pkg');
    assert.equal(packageDirOf('agent/agent.ts'), null);
    const inputs = checkAgentInputs(meta('agent/agent.ts', 'node_modules/mqtt/build/index.js', 'node_modules/mqtt/node_modules/lru-cache/dist/index.js'));
    assert.deepEqual(inputs.packageDirs, ['node_modules/mqtt', 'node_modules/mqtt/node_modules/lru-cache']);
    assert.deepEqual(inputs.packages, ['lru-cache', 'mqtt']);
    // The real bundle: each package esbuild read from, and a component with a licence text for each.
    assert.ok(bundle.inputs.packageDirs.length >= 15, bundle.inputs.packageDirs.join(' '));
    for (const d of bundle.inputs.packageDirs) {
      const c = components.find((x) => x.kind === 'npm' && d.endsWith(`node_modules/${x.name}`));
      assert.ok(c, d);
      assert.ok(c.texts.length > 0 && c.texts.every((t) => t.text.trim().length > 100), `${d}: licence text`);
      assert.match(c.integrity ?? '', /^sha512-/, `${d}: package-lock integrity`);
    }
    assert.doesNotThrow(() => checkLicences(components));
  });

  it('writes one legal notice with every component\'s licence text', () => {
    const legal = legalNotice('trustroll-agent test', components, '/*! kept comment */');
    for (const c of components) {
      assert.ok(legal.includes(`\n${c.name} ${c.version}\nLicence: ${c.license}\n`), c.name);
      for (const t of c.texts) assert.ok(legal.includes(t.text.replace(/\s+$/, '')), `${c.name}: ${t.from}`);
    }
    assert.match(legal, /Apache License\s+Version 2\.0/);
    assert.match(legal, /May you do good and not evil/);
    assert.ok(legal.includes('/*! kept comment */'));
  });

  it('stops at a bundled package that ships no licence text, and takes one from cross-compile/licenses/', () => {
    const root = mkdtempSync(join(tmpdir(), 'trustroll-nolicence-'));
    try {
      mkdirSync(join(root, 'node_modules', 'bare'), { recursive: true });
      writeFileSync(join(root, 'node_modules', 'bare', 'package.json'), JSON.stringify({ name: 'bare', version: '1.0.0', license: 'MIT' }));
      writeFileSync(join(root, 'node_modules', 'bare', 'index.js'), 'module.exports = 1;\n');
      writeFileSync(join(root, 'package-lock.json'), JSON.stringify({ packages: { 'node_modules/bare': { version: '1.0.0', integrity: 'sha512-AAAA' } } }));
      const inputs = checkAgentInputs(meta('agent/agent.ts', 'node_modules/bare/index.js'));
      const bare = npmComponents(inputs.packageDirs, BUNDLE_FILES, root);
      assert.throws(() => checkLicences(bare), (e: unknown) => isCode('E_BUILD_LICENSE')(e) && /bare@1\.0\.0 ships no licence text/.test((e as Error).message));
      assert.throws(() => legalNotice('x', bare), isCode('E_BUILD_LICENSE'));
      mkdirSync(join(root, 'cross-compile', 'licenses'), { recursive: true });
      writeFileSync(join(root, 'cross-compile', 'licenses', 'bare@1.0.0.LICENSE'), 'MIT License, text taken from the upstream repository\n');
      const fixed = npmComponents(inputs.packageDirs, BUNDLE_FILES, root);
      assert.doesNotThrow(() => checkLicences(fixed));
      assert.equal(fixed[0]!.texts[0]!.from, 'cross-compile/licenses/bare@1.0.0.LICENSE');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('lists every component in the SPDX 2.3 document with version, licence and hash, its files tied to it; one left out is caught', () => {
    const files = new Map<string, FileHashes>([...BUNDLE_FILES, 'lib/addons/better_sqlite3.node', 'bin/node'].map((f) => [`opt/trustroll/${f}`, hashesOf(f)]));
    const doc = spdxDocument({ name: 'trustroll-agent', version: '0.1.0', arch: 'arm64', source: { commit: 'a'.repeat(40), dirty: false, epoch: 1_700_000_000 }, components, files, excluded: ['opt/trustroll/share/sbom.spdx.json'] });
    assert.equal(doc.spdxVersion, 'SPDX-2.3');
    assert.equal(doc.creationInfo.created, '2023-11-14T22:13:20Z');
    assert.doesNotThrow(() => checkSbom(doc, components));
    const mqtt = doc.packages.find((p) => p.name === 'mqtt')!;
    assert.equal(mqtt.checksums![0]!.algorithm, 'SHA512');
    assert.match(mqtt.checksums![0]!.checksumValue, /^[0-9a-f]{128}$/);
    assert.equal(mqtt.externalRefs![0]!.referenceLocator, `pkg:npm/mqtt@${mqtt.versionInfo}`);
    assert.deepEqual(spdxDocument({ name: 'trustroll-agent', version: '0.1.0', arch: 'arm64', source: { commit: 'a'.repeat(40), dirty: false, epoch: 1_700_000_000 }, components, files, excluded: ['opt/trustroll/share/sbom.spdx.json'] }), doc, 'deterministic');
    const without = { ...doc, packages: doc.packages.filter((p) => p.name !== 'mqtt') };
    assert.throws(() => checkSbom(without, components), (e: unknown) => isCode('E_BUILD_LICENSE')(e) && /mqtt@[\d.]+: no package entry/.test((e as Error).message));
    const untied = { ...doc, relationships: doc.relationships.filter((r) => !(r.relationshipType === 'GENERATED_FROM' && r.relatedSpdxElement === mqtt.SPDXID)) };
    assert.throws(() => checkSbom(untied, components), /mqtt@[\d.]+: \/opt\/trustroll\/lib\/trustroll-agent\.mjs not listed/);
    const unlicensed = { ...doc, packages: doc.packages.map((p) => (p.name === 'ms' ? { ...p, licenseConcluded: 'NOASSERTION' } : p)) };
    assert.throws(() => checkSbom(unlicensed, components), /ms@[\d.]+: no licence/);
  });

  it('derives the recipes\' licence lines from the components', () => {
    const v = recipeValues([{ license: 'MIT' }, { license: 'MIT AND ISC AND Apache-2.0' }, { license: 'blessing' }, { license: '(MIT OR CC0-1.0)' }], Buffer.from('legal\n'));
    assert.equal(v.yoctoLicense, '(MIT | CC0-1.0) & Apache-2.0 & ISC & MIT & PD');
    assert.equal(v.buildrootLicense, '(MIT OR CC0-1.0), Apache-2.0, blessing, ISC, MIT');
    assert.equal(v.legalMd5, createHash('md5').update('legal\n').digest('hex'));
  });
});

describe('build source and reproducible packing', function () {
  this.timeout(120_000);

  it('names the commit, and takes SOURCE_DATE_EPOCH over the commit time', () => {
    const s = sourceState(REPO_ROOT, {});
    const head = spawnSync('git', ['log', '-1', '--format=%H %ct'], { cwd: REPO_ROOT, encoding: 'utf8' }).stdout.trim().split(' ');
    assert.equal(s.commit, head[0]);
    assert.equal(s.epoch, Number(head[1]));
    assert.equal(s.epochFrom, 'commit');
    assert.match(describeSource(s), /^commit [0-9a-f]{12}(, dirty)?$/);
    assert.equal(describeSource({ commit: 'b'.repeat(40), dirty: true }), `commit ${'b'.repeat(12)}, dirty`);
    const env = sourceState(REPO_ROOT, { SOURCE_DATE_EPOCH: '1234567890' });
    assert.deepEqual([env.epoch, env.epochFrom], [1234567890, 'SOURCE_DATE_EPOCH']);
    assert.throws(() => sourceState(REPO_ROOT, { SOURCE_DATE_EPOCH: 'yesterday' }), isCode('E_BUILD_SOURCE'));
  });

  it('tells mksquashfs the time one way only: SOURCE_DATE_EPOCH from 4.5 on, the options before', () => {
    for (const v of [[4, 5, 1], [4, 6, 1], [5, 0]]) assert.deepEqual(squashfsTime(v, 42, { SOURCE_DATE_EPOCH: '7' }), { args: [], env: { SOURCE_DATE_EPOCH: '42' } });
    assert.deepEqual(squashfsTime([4, 4], 42, { SOURCE_DATE_EPOCH: '7', PATH: '/bin' }), { args: ['-mkfs-time', '42', '-all-time', '42'], env: { PATH: '/bin' } });
  });

  it('packs a tree to the same tarball and squashfs bytes whatever its files\' times and modes, every entry at the epoch', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-pack-'));
    const saved = process.env.SOURCE_DATE_EPOCH;
    try {
      // SOURCE_DATE_EPOCH set in the environment, as Yocto and Buildroot do (mksquashfs refused it with its time options).
      process.env.SOURCE_DATE_EPOCH = '1600000000';
      const digests: string[][] = [];
      for (const [i, mode] of [[0, 0o600], [1, 0o664]] as const) {
        const tree = join(dir, `tree${i}`);
        mkdirSync(join(tree, 'opt', 'bin'), { recursive: true });
        mkdirSync(join(tree, 'var', 'lib', 'trustroll'), { recursive: true });
        writeFileSync(join(tree, 'opt', 'a.txt'), 'a\n', { mode });
        writeFileSync(join(tree, 'opt', 'bin', 'run'), '#!/bin/sh\n', { mode: 0o700 | (mode & 0o070) });
        utimesSync(join(tree, 'opt', 'a.txt'), 1000 + i * 1e8, 1000 + i * 1e8);
        normaliseTree(tree, 1_600_000_000);
        await packTarball(tree, join(dir, `t${i}.tar.gz`), 1_600_000_000);
        const squashed = await packSquashfs(tree, join(dir, `t${i}.squashfs`), 1_600_000_000);
        digests.push([join(dir, `t${i}.tar.gz`), ...(squashed ? [join(dir, `t${i}.squashfs`)] : [])].map((f) => createHash('sha256').update(readFileSync(f)).digest('hex')));
      }
      assert.deepEqual(digests[1], digests[0]);
      const list = spawnSync('tar', ['--full-time', '--numeric-owner', '-tvzf', join(dir, 't0.tar.gz')], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } }).stdout.trim().split('\n');
      for (const line of list) assert.match(line, /^[-d][rwx-]{9} 0\/0 .* 2020-09-13 12:26:40 \.\//, line);
      assert.ok(list.some((l) => l.startsWith('drwx------ 0/0') && l.endsWith('./var/lib/trustroll/')), list.join('\n'));
      assert.ok(list.some((l) => l.startsWith('-rwxr-xr-x') && l.endsWith('./opt/bin/run')));
      assert.equal(readFileSync(join(dir, 't0.tar.gz')).subarray(4, 8).readUInt32LE(), 0, 'gzip header carries no time');
      if (mksquashfsVersion()) {
        const info = spawnSync('unsquashfs', ['-s', join(dir, 't0.squashfs')], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
        assert.match(info.stdout, /Creation or last append time Sun Sep 13 12:26:40 2020/);
      }
    } finally {
      if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH; else process.env.SOURCE_DATE_EPOCH = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
