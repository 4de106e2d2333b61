import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROTOCOL_ERRORS, ProtocolError } from '../../protocol/errors.ts';
import { AGENT_ERRORS } from '../../agent/errors.ts';
import { MANAGER_ERRORS } from '../../manager/errors.ts';
import { CA_ERRORS } from '../../manager/ca/errors.ts';
import { HAL_ERROR_CODES } from '../../hal/errors.ts';
import { TLS_ERRORS } from '../../agent/tls/errors.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const ROOMS: Record<string, Record<string, string>> = { protocol: PROTOCOL_ERRORS, agent: AGENT_ERRORS, tls: TLS_ERRORS, manager: MANAGER_ERRORS, ca: CA_ERRORS, hal: HAL_ERROR_CODES };

function sources(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const rel = join(dir, name);
    if (statSync(join(root, rel)).isDirectory()) return sources(rel);
    return rel.endsWith('.ts') ? [rel] : [];
  });
}

describe('error codes (all rooms)', () => {
  it('no code is defined in two rooms', () => {
    const seen = new Map<string, string>();
    for (const [room, table] of Object.entries(ROOMS)) {
      for (const code of Object.keys(table)) {
        assert.ok(!seen.has(code), `${code} is defined by both ${seen.get(code)} and ${room}`);
        seen.set(code, room);
      }
    }
  });

  it('every code is documented exactly once in docs/errors.md with its action text', () => {
    const doc = readFileSync(join(root, 'docs/errors.md'), 'utf8');
    for (const table of Object.values(ROOMS)) {
      for (const [code, text] of Object.entries(table)) {
        const rows = doc.split('\n').filter((l) => l.startsWith(`| \`${code}\` |`));
        assert.equal(rows.length, 1, `${code} must have exactly one row in docs/errors.md`);
        assert.ok(rows[0]!.includes(text.replace(/\|/g, '\\|')), `${code}: docs/errors.md text is out of date`);
      }
    }
  });

  it('every code the source raises is defined in a room table', () => {
    const defined = new Set(Object.values(ROOMS).flatMap((t) => Object.keys(t)));
    const used = new Map<string, string>();
    for (const file of ['protocol', 'agent', 'hal', 'manager', 'bin', 'demo'].flatMap(sources)) {
      for (const m of readFileSync(join(root, file), 'utf8').matchAll(/'(E_[A-Z0-9_]+)'/g)) used.set(m[1]!, file);
    }
    for (const [code, file] of used) assert.ok(defined.has(code), `${code} (used in ${file}) is not defined in any errors table`);
  });

  it('ProtocolError keeps the code for programs and the reason for people', () => {
    const e = new ProtocolError('E_VERIFY_D', 'D is not signed by R0');
    assert.equal(e.code, 'E_VERIFY_D');
    assert.equal(e.reason, 'D is not signed by R0');
    assert.equal(e.message, 'E_VERIFY_D: D is not signed by R0');
    assert.match(e.hint, /distribution root/);
  });
});
