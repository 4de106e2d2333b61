/**
 * Preloaded (`--import`) into a real CLI by test/cli/hints.test.ts: when the
 * program parses its command line, it prints instead, as one JSON object,
 * the help every command of its tree prints for `--help` (keyed by the
 * command path, "" for the program), and runs nothing. `trustroll` parses
 * with Commander, `trustroll-agent` with bin/command-line.ts. One process per CLI
 * answers for all its commands; the test compares one entry with a real
 * `<cli> <command> --help` run.
 */
import { Command } from 'commander';
import { CommandLine } from '../../bin/command-line.ts';

Command.prototype.parseAsync = async function (this: Command) {
  const out: Record<string, string> = {};
  const walk = (cmd: Command, path: string[]): void => {
    let text = '';
    cmd.configureOutput({ writeOut: (s) => { text += s; }, writeErr: (s) => { text += s; } });
    cmd.outputHelp();
    out[path.join(' ')] = text;
    for (const sub of cmd.commands) walk(sub, [...path, sub.name()]);
  };
  walk(this, []);
  process.stdout.write(JSON.stringify(out));
  return this;
};

CommandLine.prototype.run = async function (this: CommandLine) {
  process.stdout.write(JSON.stringify(this.helpTree()));
};
