import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AGENT_ERRORS } from '../../agent/errors.ts';
import { HAL_ERROR_CODES } from '../../hal/errors.ts';
import { TLS_ERRORS } from '../../agent/tls/errors.ts';
import { CA_ERRORS, CaError, isCaError } from '../../manager/ca/errors.ts';
import { MANAGER_ERRORS } from '../../manager/errors.ts';
import { CsrBuildError } from '../../protocol/csr.ts';
import { PROTOCOL_ERRORS } from '../../protocol/errors.ts';

describe('manager/ca/errors.ts', () => {
  it('every code is prefixed, documented with an action, and not reused by another room', () => {
    const others = new Set([...Object.keys(PROTOCOL_ERRORS), ...Object.keys(MANAGER_ERRORS), ...Object.keys(AGENT_ERRORS), ...Object.keys(HAL_ERROR_CODES), ...Object.keys(TLS_ERRORS), new CsrBuildError('x').code]);
    for (const [code, doc] of Object.entries(CA_ERRORS)) {
      assert.match(code, /^E_(CA|CSR|LEAF)_[A-Z_]+$/);
      assert.ok(doc.length > 40, `${code} needs a real explanation`);
      assert.ok(!others.has(code), `${code} is already used by another room`);
    }
  });

  it('every code is thrown somewhere in manager/ca, and every thrown code is listed', () => {
    const dir = fileURLToPath(new URL('../../manager/ca/', import.meta.url));
    const source = readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'errors.ts').map((f) => readFileSync(`${dir}${f}`, 'utf8')).join('\n');
    const thrown = new Set([...source.matchAll(/CaError\('(E_[A-Z_]+)'/g)].map((m) => m[1]!));
    assert.deepEqual([...thrown].sort(), Object.keys(CA_ERRORS).sort());
  });

  it('CaError carries code, hint and a message prefixed with the code', () => {
    const e = new CaError('E_CA_VALIDITY', 'R0 expired');
    assert.equal(e.code, 'E_CA_VALIDITY');
    assert.equal(e.message, 'E_CA_VALIDITY: R0 expired');
    assert.equal(e.hint, CA_ERRORS.E_CA_VALIDITY);
    assert.ok(isCaError(e) && isCaError(e, 'E_CA_VALIDITY') && !isCaError(e, 'E_CSR_SIGNATURE'));
    assert.ok(!isCaError(new Error('x')));
  });
});
