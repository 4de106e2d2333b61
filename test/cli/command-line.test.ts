/**
 * bin/command-line.ts, the device agent's command-line parser: values as
 * the actions receive them, and every usage mistake refused with Commander's
 * wording, the command's help after it, exit code 2, and the action not run.
 */
import assert from 'node:assert/strict';
import { CommandLine, UsageExit, type OptionValues } from '../../bin/command-line.ts';

/** A program with one command of every option kind; records what its action got. */
function program(): { cli: CommandLine; got: OptionValues[] } {
  const got: OptionValues[] = [];
  const cli = new CommandLine('tool', 'a test program', '9.9.9').command({
    name: 'go',
    description: 'do the thing',
    options: [
      { flags: '--config <file>', description: 'configuration', required: true },
      { flags: '--replace-lost-key', description: 'a switch' },
      { flags: '--algorithm <alg>', description: 'one of a list', choices: ['P-256', 'RSA-2048'] },
      { flags: '--peer <host:port>', description: 'repeatable', repeatable: true },
      { flags: '--timeout <ms>', description: 'with a default', default: '5000' },
    ],
    action: (o) => void got.push(o),
  });
  return { cli, got };
}

/** Runs `argv`; what it printed and how it ended. */
async function run(argv: string[]): Promise<{ out: string; err: string; exit: number | null; got: OptionValues[] }> {
  const { cli, got } = program();
  let out = '';
  let err = '';
  try {
    await cli.run(argv, (s) => { out += s; }, (s) => { err += s; });
    return { out, err, exit: null, got };
  } catch (e) {
    assert.ok(e instanceof UsageExit, String(e));
    return { out, err, exit: e.exitCode, got };
  }
}

describe('agent command line (bin/command-line.ts)', () => {
  it('hands the action camel-cased values, defaults, repeated options in order, and --name=value', async () => {
    const r = await run(['go', '--config=a.json', '--replace-lost-key', '--peer', 'h1:1', '--algorithm', 'RSA-2048', '--peer=h2:2']);
    assert.equal(r.exit, null, r.err);
    assert.deepEqual(r.got, [{ config: 'a.json', replaceLostKey: true, algorithm: 'RSA-2048', peer: ['h1:1', 'h2:2'], timeout: '5000' }]);
    const bare = await run(['go', '--config', 'b.json']);
    assert.deepEqual(bare.got, [{ config: 'b.json', replaceLostKey: false, algorithm: undefined, peer: [], timeout: '5000' }]);
  });

  it('refuses each usage mistake with exit code 2, the command\'s help after the error, and runs nothing', async () => {
    const cases: [string[], string, string][] = [
      [['go', '--config', 'a', '--bogus'], "error: unknown option '--bogus'", 'Usage: tool go [options]'],
      [['go'], "error: required option '--config <file>' not specified", 'Usage: tool go [options]'],
      [['go', '--config', 'a', '--algorithm', 'P-521'], "error: option '--algorithm <alg>' argument 'P-521' is invalid. Allowed choices are P-256, RSA-2048.", 'Usage: tool go [options]'],
      [['go', '--config'], "error: option '--config <file>' argument missing", 'Usage: tool go [options]'],
      [['go', '--config', 'a', 'extra'], "error: too many arguments for 'go'. Expected 0 arguments but got 1.", 'Usage: tool go [options]'],
      [['go', 'one', '--config', 'a', 'two'], "error: too many arguments for 'go'. Expected 0 arguments but got 2.", 'Usage: tool go [options]'],
      [['went'], "error: unknown command 'went'", 'Usage: tool [options] [command]'],
      [['--bogus'], "error: unknown option '--bogus'", 'Usage: tool [options] [command]'],
      [['help', 'went'], "error: unknown command 'went'", 'Usage: tool [options] [command]'],
    ];
    for (const [argv, error, usage] of cases) {
      const r = await run(argv);
      assert.equal(r.exit, 2, argv.join(' '));
      assert.ok(r.err.startsWith(`${error}\n\n${usage}`), `${argv.join(' ')}:\n${r.err}`);
      assert.equal(r.out, '');
      assert.deepEqual(r.got, [], `${argv.join(' ')} ran the action`);
    }
  });

  it('prints help and the version on stdout with exit code 0; no command prints the help on stderr with 2', async () => {
    const v = await run(['--version']);
    assert.deepEqual([v.exit, v.out, v.err], [0, '9.9.9\n', '']);
    assert.equal((await run(['-V'])).out, '9.9.9\n');
    for (const argv of [['go', '--help'], ['go', '--config', 'a', '-h'], ['help', 'go']]) {
      const h = await run(argv);
      assert.equal(h.exit, 0, argv.join(' '));
      assert.deepEqual(h.got, []);
      assert.match(h.out, /^Usage: tool go \[options\]\n\ndo the thing\n\nOptions:\n/);
      assert.match(h.out, /--algorithm <alg> +one of a list \(choices: "P-256", "RSA-2048"\)\n/);
      assert.match(h.out, /--timeout <ms> +with a default \(default: "5000"\)\n/);
      assert.match(h.out, /--peer <host:port> +repeatable \(default: \[\]\)\n/);
      assert.match(h.out, /-h, --help +display help for command\n$/);
    }
    const top = await run(['--help']);
    assert.equal(top.exit, 0);
    assert.match(top.out, /Commands:\n {2}go \[options\] +do the thing\n {2}help \[command\] +display help for command\n$/);
    const none = await run([]);
    assert.equal(none.exit, 2);
    assert.equal(none.out, '');
    assert.match(none.err, /^Usage: tool \[options\] \[command\]/);
  });

  it('wraps long descriptions under their column and rejects malformed option flags when a command is added', () => {
    const cli = new CommandLine('tool', 'x', '1').command({ name: 'go', description: 'd', options: [{ flags: '--long <v>', description: 'word '.repeat(30).trim() }], action: () => {} });
    const lines = cli.help('go').split('\n');
    assert.ok(lines.every((l) => l.length <= 80), lines.join('\n'));
    const at = lines.findIndex((l) => l.includes('--long <v>'));
    assert.match(lines[at + 1]!, /^ {14}word/, "under the description column: 2 + len('--long <v>') + 2");
    assert.throws(() => new CommandLine('tool', 'x', '1').command({ name: 'bad', description: 'd', options: [{ flags: '-x', description: 'short only' }], action: () => {} }), /must read --name/);
  });
});
