/**
 * The image's layout and the unit's sandbox agree: with the template
 * configuration (image/files/agent.json.example) every place the agent
 * writes (agent/state-paths.ts: trust store, HAL keys and records, the
 * management link's record and rotated files, the health file) is under
 * /var/lib/trustroll or /run/trustroll, nothing under /etc; the unit makes
 * the file system read-only (ProtectSystem=strict) except exactly those two
 * (StateDirectory, ReadWritePaths, RuntimeDirectory) and its private /tmp.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkAgentConfig } from '../../agent/config.ts';
import { linkDirOf, statePaths } from '../../agent/state-paths.ts';
import { REPO_ROOT } from '../../cross-compile/paths.ts';

const FILES = join(REPO_ROOT, 'image', 'files');
const WRITABLE = ['/var/lib/trustroll', '/run/trustroll'];

/** Every `Key=value` of the unit's [Service] section, values by key. */
function serviceDirectives(unit: string): Map<string, string[]> {
  const service = /^\[Service\]\n([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(unit)?.[1] ?? '';
  const out = new Map<string, string[]>();
  for (const line of service.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

describe('image layout: the agent writes only where the unit lets it', () => {
  const config = checkAgentConfig(JSON.parse(readFileSync(join(FILES, 'agent.json.example'), 'utf8')));

  it('the template\'s write paths are all under /var/lib/trustroll (persistent) or /run/trustroll (volatile), none under /etc', () => {
    const paths = statePaths(config);
    assert.ok(paths.length >= 4, paths.map((p) => p.path).join(', '));
    for (const p of paths) {
      const under = WRITABLE.find((w) => p.path === w || p.path.startsWith(`${w}/`));
      assert.ok(under, `${p.path} (${p.holds}) is outside ${WRITABLE.join(' and ')}`);
      assert.equal(p.volatile, under === '/run/trustroll', `${p.path}: volatile exactly when under /run`);
    }
    assert.equal(linkDirOf(config), '/var/lib/trustroll/link', 'the management link\'s record and rotated files');
    assert.ok(config.link!.ca.startsWith('/etc/trustroll/') && config.link!.cert.startsWith('/etc/trustroll/'), 'the factory\'s link files are configuration, read only');
  });

  it('the unit: ProtectSystem=strict, writable exactly /var/lib/trustroll (StateDirectory, ReadWritePaths) and /run/trustroll (RuntimeDirectory)', () => {
    const d = serviceDirectives(readFileSync(join(FILES, 'trustroll-agent.service'), 'utf8'));
    assert.deepEqual(d.get('ProtectSystem'), ['strict']);
    assert.deepEqual(d.get('StateDirectory'), ['trustroll']);
    assert.deepEqual(d.get('RuntimeDirectory'), ['trustroll']);
    assert.deepEqual(d.get('ReadWritePaths'), ['/var/lib/trustroll']);
    assert.deepEqual(d.get('ProtectHome'), ['true']);
    for (const k of ['CacheDirectory', 'LogsDirectory', 'ConfigurationDirectory', 'BindPaths', 'ReadWriteDirectories']) assert.equal(d.get(k), undefined, `${k} would make another folder writable`);
  });
});
