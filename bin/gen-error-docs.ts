/**
 * Regenerates docs/errors.md from the error tables of every room:
 * `npx tsx bin/gen-error-docs.ts > docs/errors.md` (a test checks it is current).
 */
import { PROTOCOL_ERRORS } from '../protocol/errors.ts';
import { AGENT_ERRORS } from '../agent/errors.ts';
import { MANAGER_ERRORS } from '../manager/errors.ts';
import { CA_ERRORS } from '../manager/ca/errors.ts';
import { HAL_ERROR_CODES } from '../hal/errors.ts';
import { TLS_ERRORS } from '../agent/tls/errors.ts';
const rooms: [string, string, Record<string, string>][] = [
  ['Protocol (devices put these in failed acknowledgements)', 'protocol/errors.ts', PROTOCOL_ERRORS],
  ['Agent (start-up and provisioning on the device)', 'agent/errors.ts', AGENT_ERRORS],
  ['Device TLS (live mutual TLS service and connector on the device)', 'agent/tls/errors.ts', TLS_ERRORS],
  ['Manager (orchestration, fleet database, key vault)', 'manager/errors.ts', MANAGER_ERRORS],
  ['CA (certificate issuance on the manager)', 'manager/ca/errors.ts', CA_ERRORS],
  ['HAL (device key and record storage; settings in docs/hal.md)', 'hal/errors.ts', HAL_ERROR_CODES],
];
let out = '# Error codes\n\nEvery error trustroll raises carries one of these codes. Codes are stable: never renamed, never reused (`test/protocol/errors.test.ts` checks that every code below is defined once, and that every code the source raises is listed here).\n';
for (const [title, file, table] of rooms) {
  out += `\n## ${title}\n\nDefined in \`${file}\`.\n\n| code | what to do |\n| --- | --- |\n`;
  for (const [code, text] of Object.entries(table)) out += `| \`${code}\` | ${String(text).replace(/\|/g, '\\|')} |\n`;
}
process.stdout.write(out);
