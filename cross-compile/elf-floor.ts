/**
 * The C library floor of the shipped ELF files: which glibc and libstdc++
 * symbol versions each one requires (its version references, .gnu.version_r,
 * read with the target's cross `objdump -p`), the highest per family, and
 * the check that none is above the floor a target documents
 * (`Target.libcFloor`, the table in image/README.md). The dynamic linker
 * refuses to load a file whose required version the device's libc.so.6 or
 * libstdc++.so.6 does not define ("version `GLIBC_2.34' not found").
 */
import { spawnSync } from 'node:child_process';
import { BuildError } from './errors.ts';
import type { Target } from './targets.ts';

/** Symbol version families the floor covers: glibc, and libstdc++ (its library and its C++ ABI). */
export const FLOOR_FAMILIES = ['GLIBC', 'GLIBCXX', 'CXXABI'] as const;
export type FloorFamily = (typeof FLOOR_FAMILIES)[number];
/** Highest version per family, e.g. { GLIBC: '2.34', GLIBCXX: '3.4.29', CXXABI: '1.3.9' }. */
export type LibcFloor = Record<FloorFamily, string>;

/** One file's requirement: the highest version it needs per family (absent: it needs none of that family). */
export interface ElfNeeds {
  file: string;
  needs: Partial<LibcFloor>;
}

/** Compares dotted version numbers numerically (2.4 < 2.34): negative, 0 or positive. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/** The highest version per family among version names like "GLIBC_2.34", "GLIBCXX_3.4.29" (others, e.g. GCC_3.5, are left out). */
export function highestPerFamily(names: Iterable<string>): Partial<LibcFloor> {
  const found: Partial<LibcFloor> = {};
  for (const name of names) {
    const m = /^([A-Z]+)_(\d+(?:\.\d+)*)$/.exec(name);
    const family = m?.[1] as FloorFamily | undefined;
    if (!m || !family || !FLOOR_FAMILIES.includes(family)) continue;
    if (found[family] === undefined || compareVersions(m[2]!, found[family]!) > 0) found[family] = m[2]!;
  }
  // In FLOOR_FAMILIES' order, so build-info reads the same whatever order the file lists them in.
  return Object.fromEntries(FLOOR_FAMILIES.filter((f) => found[f] !== undefined).map((f) => [f, found[f]!]));
}

/** The version names `objdump -p` lists under "Version References" (what the file requires, per library). */
export function parseVersionReferences(objdumpP: string): string[] {
  const section = objdumpP.split(/^Version References:\s*$/m)[1];
  if (section === undefined) return [];
  const names: string[] = [];
  for (const line of section.split('\n')) {
    if (/^\S/.test(line)) break;
    const m = /^\s+0x[0-9a-f]+\s+0x[0-9a-f]+\s+\d+\s+(\S+)\s*$/.exec(line);
    if (m) names.push(m[1]!);
  }
  return names;
}

/** What one ELF file of the target requires, measured with the target's cross objdump. */
export function measureElf(path: string, target: Pick<Target, 'toolchain' | 'toolchainPackages'>): ElfNeeds {
  const tool = `${target.toolchain}-objdump`;
  const r = spawnSync(tool, ['-p', path], { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.error || r.status !== 0) throw new BuildError('E_BUILD_TOOL', `${tool} -p ${path}: ${r.error?.message ?? r.stderr.trim()}; install binutils-${target.toolchain} (${target.toolchainPackages.join(' ')} bring it)`);
  return { file: path, needs: highestPerFamily(parseVersionReferences(r.stdout)) };
}

/** The highest requirement over several files, per family. */
export function floorOf(files: ElfNeeds[]): Partial<LibcFloor> {
  return highestPerFamily(files.flatMap((f) => Object.entries(f.needs).map(([family, v]) => `${family}_${v}`)));
}

/** Throws E_BUILD_FLOOR naming every file that needs a newer version than `floor` allows. */
export function checkFloor(files: ElfNeeds[], floor: LibcFloor, what: string): void {
  const over = files.flatMap((f) => FLOOR_FAMILIES
    .filter((family) => f.needs[family] !== undefined && compareVersions(f.needs[family]!, floor[family]) > 0)
    .map((family) => `${f.file} needs ${family}_${f.needs[family]} (floor ${family}_${floor[family]})`));
  if (over.length) throw new BuildError('E_BUILD_FLOOR', `${what}: ${over.join('; ')}`);
}

/** The rows image/README.md's floor table has for one image: one per ELF file (relative to /opt/trustroll), then its floor. */
export function floorTableRows(arch: string, files: ElfNeeds[], floor: LibcFloor): string[] {
  const cells = (n: Partial<LibcFloor>) => FLOOR_FAMILIES.map((f) => (n[f] ? `${f}_${n[f]}` : '-')).join(' | ');
  return [...files.map((f) => `| ${arch} | \`${f.file}\` | ${cells(f.needs)} |`), `| ${arch} | floor | ${cells(floor)} |`];
}
