/**
 * The glibc / libstdc++ floor: the symbol versions the shipped ELF files
 * require (the runtime and the addons, read with the target's cross
 * `objdump -p`) are at most the floor each target documents
 * (`libcFloor` in cross-compile/targets.ts) and exactly reach it, and
 * image/README.md's table says the same, file by file. arm64 reads the
 * built image (with the other image tests: CI, or a warm cache); a target
 * whose native builds are cached is measured from the cache; the README
 * rows of the floors are checked everywhere.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_ADDONS } from '../../cross-compile/addons.ts';
import { checkFloor, floorOf, floorTableRows, measureElf, parseVersionReferences, type ElfNeeds } from '../../cross-compile/elf-floor.ts';
import { BuildError } from '../../cross-compile/errors.ts';
import { addonCache, CACHE_DIR, REPO_ROOT } from '../../cross-compile/paths.ts';
import { TARGETS, type Target } from '../../cross-compile/targets.ts';
import { imageFor, imageTestSkipReason } from './support.ts';

const README = readFileSync(join(REPO_ROOT, 'image', 'README.md'), 'utf8');
const ELF_FILES = ['bin/node', ...AGENT_ADDONS.map((a) => `lib/addons/${a.file}`)];

/** The target's ELF files as shipped: from its image when the image tests run here, else from the native build cache, else null. */
async function shippedElfFiles(target: Target): Promise<{ files: Record<string, string>; from: string } | null> {
  if (imageTestSkipReason(target) === null) {
    const img = await imageFor(target);
    return { files: Object.fromEntries(ELF_FILES.map((f) => [f, join(img.rootfs, 'opt/trustroll', f)])), from: 'the image' };
  }
  const runtime = join(CACHE_DIR, 'runtimes', `${target.runtime.name}-${target.runtime.version}`, 'bin', 'node');
  const addons = AGENT_ADDONS.map((a) => [`lib/addons/${a.file}`, join(addonCache(target.arch), a.pkg, 'build', 'Release', a.file)] as const);
  if (!existsSync(runtime) || addons.some(([, p]) => !existsSync(p) || !existsSync(join(p, '../../../.build-key')))) return null;
  return { files: { 'bin/node': runtime, ...Object.fromEntries(addons) }, from: 'the native build cache' };
}

describe('glibc / libstdc++ floor', function () {
  this.timeout(20 * 60_000);

  it('reads what a file requires from objdump -p\'s version references', () => {
    const sample = [
      'Version References:',
      '  required from libc.so.6:',
      '    0x069691b4 0x00 05 GLIBC_2.34',
      '    0x0d696914 0x00 03 GLIBC_2.4',
      '  required from libstdc++.so.6:',
      '    0x0297f871 0x00 06 GLIBCXX_3.4.21',
      '    0x0bafd179 0x00 04 CXXABI_1.3.9',
      '    0x08922974 0x00 02 GLIBCXX_3.4',
      '  required from libgcc_s.so.1:',
      '    0x0b792655 0x00 08 GCC_3.5',
      'private flags = 0x5000400: [Version5 EABI] [hard-float ABI]',
    ].join('\n');
    const names = parseVersionReferences(sample);
    assert.deepEqual(names, ['GLIBC_2.34', 'GLIBC_2.4', 'GLIBCXX_3.4.21', 'CXXABI_1.3.9', 'GLIBCXX_3.4', 'GCC_3.5']);
    const file: ElfNeeds = { file: 'x.node', needs: floorOf([{ file: 'x.node', needs: { GLIBC: '2.34', GLIBCXX: '3.4.21', CXXABI: '1.3.9' } }]) };
    assert.doesNotThrow(() => checkFloor([file], { GLIBC: '2.34', GLIBCXX: '3.4.29', CXXABI: '1.3.9' }, 'test'));
    // 2.34 is newer than 2.4 (numeric, not text, order) and newer than a 2.28 floor.
    assert.throws(() => checkFloor([file], { GLIBC: '2.28', GLIBCXX: '3.4.29', CXXABI: '1.3.9' }, 'test'),
      (e: unknown) => e instanceof BuildError && e.code === 'E_BUILD_FLOOR' && /x\.node needs GLIBC_2\.34 \(floor GLIBC_2\.28\)/.test(e.message));
  });

  for (const target of Object.values(TARGETS) as Target[]) {
    it(`${target.arch}: image/README.md documents the floor cross-compile/targets.ts holds`, () => {
      const floor = target.libcFloor!;
      const row = floorTableRows(target.arch, [], floor)[0]!;
      assert.ok(README.includes(`${row}\n`), `image/README.md lacks the row\n${row}`);
    });

    it(`${target.arch}: no shipped ELF file needs a newer glibc or libstdc++ symbol than the documented floor, and the table lists each`, async function () {
      const shipped = await shippedElfFiles(target);
      if (!shipped) {
        process.stderr.write(`      skipped: the ${target.arch} native builds are not cached here ("npm run cross-compile -- --arch ${target.arch}" once)\n`);
        this.skip();
      }
      const measured = Object.entries(shipped.files).map(([rel, path]) => ({ ...measureElf(path, target), file: rel }));
      for (const m of measured) assert.ok(m.needs.GLIBC, `${m.file} (from ${shipped.from}) requires a GLIBC version`);
      checkFloor(measured, target.libcFloor!, `${target.arch}, from ${shipped.from}`);
      // The floor is what the files need, no more: the documentation does not ask devices for a newer C library than necessary.
      assert.deepEqual(floorOf(measured), target.libcFloor, `${target.arch}: the measured floor is not the documented one`);
      const rows = floorTableRows(target.arch, measured, target.libcFloor!);
      const missing = rows.filter((r) => !README.includes(`${r}\n`));
      assert.deepEqual(missing, [], `image/README.md's floor table should have these rows (measured from ${shipped.from}):\n${rows.join('\n')}`);
    });
  }
});
