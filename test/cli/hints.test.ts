/**
 * Every command a hint names exists: each `trustroll ...` or
 * `trustroll-agent ...` mentioned in an error registry, an error message in
 * the sources, or the docs resolves to a real (sub)command, and every
 * `--option` named with it is one that command accepts (checked against
 * the real CLIs' --help). A hint that sends an operator to an option that
 * does not exist is a defect.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_ERRORS } from '../../agent/errors.ts';
import { HAL_ERROR_CODES } from '../../hal/errors.ts';
import { MANAGER_ERRORS } from '../../manager/errors.ts';
import { PROTOCOL_ERRORS } from '../../protocol/errors.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BINS = { trustroll: join(ROOT, 'bin/trustroll.mjs'), 'trustroll-agent': join(ROOT, 'bin/trustroll-agent.mjs') } as const;

/** Every mention `trustroll[-agent] words... --opts` in `text` (options up to the end of the quoted hint). */
export function mentions(text: string): { bin: keyof typeof BINS; words: string[]; options: string[]; at: string }[] {
  const out: { bin: keyof typeof BINS; words: string[]; options: string[]; at: string }[] = [];
  for (const m of text.matchAll(/["'`(]\s*(trustroll(?:-agent)?) ([^"'`)\n]*)/g)) {
    const rest = m[2]!;
    const words = rest.split(/\s+/).filter(Boolean);
    const path: string[] = [];
    for (const w of words) {
      if (!/^[a-z][a-z-]*$/.test(w)) break;
      path.push(w);
    }
    out.push({ bin: m[1] as keyof typeof BINS, words: path, options: [...rest.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)].map((o) => o[0]), at: `${m[1]} ${rest}`.slice(0, 120) });
  }
  return out;
}

function sources(dir: string, exts: RegExp, acc: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, exts, acc);
    else if (exts.test(name) && !name.endsWith('.test.ts')) acc.push(p);
  }
  return acc;
}

const HELP_DUMP = fileURLToPath(new URL('./help-dump.ts', import.meta.url));
const helpTrees = new Map<keyof typeof BINS, Record<string, string>>();
/**
 * What `<bin> <path...> --help` prints, and whether `path` is a real command
 * (its own usage line). One run of each real CLI with test/cli/help-dump.ts
 * preloaded answers for its whole command tree; the first test checks that
 * answer against real `--help` runs.
 */
function help(bin: keyof typeof BINS, path: string[]): { ok: boolean; text: string } {
  let tree = helpTrees.get(bin);
  if (!tree) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', HELP_DUMP, BINS[bin]], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `${bin} with help-dump.ts: ${r.stderr}`);
    tree = JSON.parse(r.stdout) as Record<string, string>;
    helpTrees.set(bin, tree);
  }
  const text = tree[path.join(' ')];
  return text === undefined ? { ok: false, text: '' } : { ok: text.includes(`Usage: ${[bin, ...path].join(' ')}`), text };
}

/** `<bin> <path...> --help` run for real: its exit status and output. */
function realHelp(bin: keyof typeof BINS, path: string[]): { status: number | null; text: string } {
  const r = spawnSync(process.execPath, [BINS[bin], ...path, '--help'], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, text: r.stdout + r.stderr };
}

/** The longest prefix of `words` that is a real command path. */
function commandPath(bin: keyof typeof BINS, words: string[]): string[] {
  for (let n = Math.min(words.length, 3); n > 0; n--) if (help(bin, words.slice(0, n)).ok) return words.slice(0, n);
  return [];
}

describe('cli: every hint names a command and options that exist', function () {
  this.timeout(180_000);

  it('finds the mentions the checker relies on (self-test of the parser)', () => {
    const m = mentions('run "trustroll rotate --resume ${id}" or ("trustroll-agent init --config <file> --replace-lost-key")');
    assert.deepEqual(m.map((x) => [x.bin, x.words[0], x.options]), [['trustroll', 'rotate', ['--resume']], ['trustroll-agent', 'init', ['--config', '--replace-lost-key']]]);
    assert.equal(help('trustroll', ['no-such-command']).ok, false);
    assert.equal(help('trustroll', ['enroll']).ok, true);
    assert.equal(help('trustroll', ['rotate', 'resume']).ok, false);
  });

  it('answers as the real CLIs\' --help do (a nested command, an agent command, an unknown one)', () => {
    for (const [bin, path] of [['trustroll', ['ca', 'init']], ['trustroll-agent', ['selftest']]] as [keyof typeof BINS, string[]][]) {
      const real = realHelp(bin, path);
      assert.equal(real.status, 0, real.text);
      assert.equal(help(bin, path).text, real.text, `${bin} ${path.join(' ')} --help`);
    }
    const unknown = realHelp('trustroll', ['no-such-command']);
    assert.ok(unknown.status !== 0 || !unknown.text.includes('Usage: trustroll no-such-command'), 'commander rejects an unknown command');
  });

  it('error registries, error messages in the sources, README and docs', () => {
    const texts: [string, string][] = [
      ...Object.entries({ ...PROTOCOL_ERRORS, ...AGENT_ERRORS, ...MANAGER_ERRORS, ...HAL_ERROR_CODES }).map(([code, text]) => [code, `"${text}"`] as [string, string]),
      ...['agent', 'manager', 'hal', 'protocol', 'bin'].flatMap((d) => sources(join(ROOT, d), /\.ts$/)).map((p) => [p.slice(ROOT.length), readFileSync(p, 'utf8')] as [string, string]),
      ...[join(ROOT, 'README.md'), ...sources(join(ROOT, 'docs'), /\.md$/)].map((p) => [p.slice(ROOT.length), readFileSync(p, 'utf8').replace(/^(\s*)(trustroll)/gm, '$1"$2')] as [string, string]),
    ];
    const problems: string[] = [];
    let checked = 0;
    for (const [where, text] of texts) {
      for (const m of mentions(text)) {
        if (m.words.length === 0) continue; // the bare program name ("trustroll serve" always has a word after it)
        const path = commandPath(m.bin, m.words);
        // Prose that names the program ("trustroll device agent") is not a hint; one with an option is.
        if (path.length === 0 && m.options.length === 0) continue;
        checked++;
        if (path.length === 0) {
          problems.push(`${where}: "${m.at}" names no ${m.bin} command`);
          continue;
        }
        const h = help(m.bin, path);
        for (const opt of m.options) if (opt !== '--help' && !new RegExp(`(?<![\\w-])${opt}(?![\\w-])`).test(h.text)) problems.push(`${where}: "${m.at}": ${m.bin} ${path.join(' ')} has no option ${opt}`);
      }
    }
    assert.ok(checked > 15, `only ${checked} mentions found; the scan is broken`);
    assert.deepEqual(problems, []);
  });
});

describe('manager: re-enrolling a device', function () {
  this.timeout(60_000);
  it('answers E_DEVICE_EXISTS naming "trustroll enroll --replace", which re-enrols it with its new key', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { generateKeyPairSync, sign } = await import('node:crypto');
    const { CaAuthority } = await import('../../manager/pki/ca-authority.ts');
    const { FleetDb } = await import('../../manager/fleet/fleet-db.ts');
    const { enrollFromCsr } = await import('../../manager/pki/enrollment.ts');
    const { buildCsr } = await import('../../protocol/csr.ts');
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-reenrol-'));
    try {
      const now = new Date();
      const ca = await CaAuthority.openOrInit(join(dir, 'ca'), { subject: 'CN=Re-enrol Root', now });
      const db = new FleetDb(join(dir, 'manager.db'));
      const csr = async () => {
        const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const spki = publicKey.export({ type: 'spki', format: 'der' });
        return { spki, pem: await buildCsr({ commonName: 'printer-9', spki, algorithm: 'P-256', sign: async (d) => sign('sha256', d, privateKey) }) };
      };
      enrollFromCsr(db, ca, { deviceId: 'printer-9', role: 'server', csrPem: (await csr()).pem, now });
      const second = await csr();
      let hint = '';
      try {
        enrollFromCsr(db, ca, { deviceId: 'printer-9', role: 'server', csrPem: second.pem, now });
      } catch (err) {
        hint = (err as Error).message;
      }
      assert.match(hint, /^E_DEVICE_EXISTS: .*"trustroll enroll --replace --id printer-9 --role server --csr <file>"/);
      assert.match(MANAGER_ERRORS.E_DEVICE_EXISTS, /trustroll enroll --replace/);
      for (const m of [...mentions(hint), ...mentions(`"${MANAGER_ERRORS.E_DEVICE_EXISTS}"`)]) {
        const h = help(m.bin, commandPath(m.bin, m.words));
        assert.ok(h.ok, m.at);
        for (const o of m.options) assert.match(h.text, new RegExp(`${o}(?![\\w-])`), `${m.at}: ${o}`);
      }
      enrollFromCsr(db, ca, { deviceId: 'printer-9', role: 'server', csrPem: second.pem, now, replace: true });
      assert.ok(db.device('printer-9').spki.equals(second.spki), 'the new key is enrolled');
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
