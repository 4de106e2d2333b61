/**
 * Two builds of one commit give the same bytes: the arm64 image of this
 * test run (built once per process, test/image/support.ts) and a second one
 * built from scratch into other folders (its cross-compile too; only the
 * cached native addons are shared), with SOURCE_DATE_EPOCH set to the
 * commit's time as Yocto and Buildroot export it (mksquashfs refused that
 * variable with its time options). Tarball and squashfs must have the same
 * SHA-256. Runs with the other arm64 image tests (CI, or a warm cache).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../cross-compile/paths.ts';
import { IMAGE_SOURCES, sourceState } from '../../cross-compile/source.ts';
import { TARGETS } from '../../cross-compile/targets.ts';
import { buildImage, type ImageBuild } from '../../image/build.ts';
import { imageFor, imageTestSkipReason } from './support.ts';

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('reproducible image (arm64)', function () {
  this.timeout(20 * 60_000);
  const target = TARGETS.arm64;
  let dir = '';
  let first: ImageBuild;
  let second: ImageBuild;

  before(async function () {
    const skip = imageTestSkipReason(target);
    if (skip) {
      process.stderr.write(`      skipped: ${skip}\n`);
      this.skip();
    }
    first = await imageFor(target);
    dir = mkdtempSync(join(tmpdir(), 'trustroll-repro-'));
    const saved = process.env.SOURCE_DATE_EPOCH;
    // The first build's time (the commit's, unless SOURCE_DATE_EPOCH was set already).
    process.env.SOURCE_DATE_EPOCH = String(Date.parse(first.info.source.date) / 1000);
    try {
      // Named as the first build's commit: where others commit into this checkout meanwhile, HEAD may have moved (the files must not differ).
      const source = { ...sourceState(), commit: first.source.commit, dirty: first.source.dirty };
      second = await buildImage(target, (line) => process.stderr.write(`      ${line}\n`), { out: join(dir, 'image'), crossOut: join(dir, 'cross'), source });
    } finally {
      if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH; else process.env.SOURCE_DATE_EPOCH = saved;
    }
  });
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  it('builds the same tarball and squashfs twice from one commit, the second with SOURCE_DATE_EPOCH set', () => {
    assert.notEqual(second.tarball, first.tarball);
    assert.equal(second.source.epochFrom, 'SOURCE_DATE_EPOCH');
    assert.equal(second.info.source.date, first.info.source.date);
    // On a difference, name the files that differ (the manifests hash every file).
    const differ = [...first.manifest].filter(([rel, h]) => second.manifest.get(rel) !== h).map(([rel]) => rel);
    // In a checkout others edit meanwhile, a changed source makes a changed bundle: say which sources are uncommitted.
    const editing = spawnSync('git', ['status', '--porcelain', '--', ...IMAGE_SOURCES], { cwd: REPO_ROOT, encoding: 'utf8' }).stdout.trim();
    assert.deepEqual(differ, [], `files that differ between the two builds${editing ? ` (uncommitted sources, edited during the run?\n${editing})` : ''}`);
    const digests = { tarball: [sha256(first.tarball), sha256(second.tarball)], squashfs: first.squashfs && second.squashfs ? [sha256(first.squashfs), sha256(second.squashfs)] : null };
    process.stderr.write(`      tarball sha256 ${digests.tarball[0]} (${first.bytes.tarball} bytes), twice\n`);
    if (digests.squashfs) process.stderr.write(`      squashfs sha256 ${digests.squashfs[0]} (${first.bytes.squashfs} bytes), twice\n`);
    assert.equal(digests.tarball[1], digests.tarball[0], 'tarball');
    assert.equal(readFileSync(`${second.tarball}.sha256`, 'utf8'), readFileSync(`${first.tarball}.sha256`, 'utf8'));
    assert.ok(digests.squashfs || !first.squashfs, 'both builds made a squashfs');
    if (digests.squashfs) assert.equal(digests.squashfs[1], digests.squashfs[0], 'squashfs');
    assert.equal(readFileSync(second.sbom, 'utf8'), readFileSync(first.sbom, 'utf8'), 'SBOM');
  });
});
