/**
 * The device agent's command-line parser: commands with options, --help,
 * --version and usage errors, on Node's own util.parseArgs. The manager's
 * CLI uses Commander; on the device Commander held about 2 MB of the idle
 * agent's memory (image/README.md, "Memory"), so `trustroll-agent` parses
 * with this instead. Help and error lines read as Commander's do
 * ("error: unknown option '--x'", then the command's help), so the two
 * programs answer alike.
 */
import { parseArgs } from 'node:util';

/** One option of a command. */
export interface OptionSpec {
  /** `--name <value>` takes a value; `--name` alone is a switch (false unless given). */
  flags: string;
  description: string;
  required?: boolean;
  /** The value when the option is not given. */
  default?: string;
  /** The only values it accepts. */
  choices?: readonly string[];
  /** May be given more than once: the value is the list, in order (empty if never given). */
  repeatable?: boolean;
}

/** Option values by camel-cased name (`--replace-lost-key` is `replaceLostKey`). */
export type OptionValues = Record<string, string | boolean | string[] | undefined>;

/** One command: what it does, its options, and what runs it. */
export interface CommandSpec {
  name: string;
  description: string;
  options: OptionSpec[];
  action: (options: OptionValues) => Promise<void> | void;
}

/** The parse ended without running a command: help or the version was printed (exit code 0), or a usage error (2). */
export class UsageExit extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
    this.name = 'UsageExit';
  }
}

const WIDTH = 80;
const HELP_OPTION = '-h, --help';
const HELP_TEXT = 'display help for command';

/** `--replace-lost-key <x>` -> `replace-lost-key`. */
const longName = (o: OptionSpec): string => /^--([a-z0-9][a-z0-9-]*)/.exec(o.flags)![1]!;
const takesValue = (o: OptionSpec): boolean => o.flags.includes('<');
const camel = (name: string): string => name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** `text` wrapped to the help's width, continuation lines indented by `indent`. */
function wrap(text: string, indent: number): string {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && indent + line.length + 1 + w.length > WIDTH) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** A help section: terms in a column `width` wide (the longest term of the whole help), descriptions wrapped beside them. */
function table(rows: [string, string][], width = Math.max(...rows.map(([t]) => t.length))): string {
  const col = width + 2;
  return rows.map(([t, d]) => `  ${t.padEnd(col)}${wrap(d, col + 2)}`).join('\n');
}

/** A program of commands (`<program> <command> [options]`). */
export class CommandLine {
  private readonly commands: CommandSpec[] = [];

  constructor(readonly name: string, readonly description: string, readonly version: string) {}

  /** Adds a command. */
  command(spec: CommandSpec): this {
    for (const o of spec.options) if (!/^--[a-z0-9][a-z0-9-]*( <[^>]+>)?$/.test(o.flags)) throw new Error(`${spec.name}: option flags "${o.flags}" must read --name or --name <value>`);
    this.commands.push(spec);
    return this;
  }

  /** The program's help, or the named command's. */
  help(command?: string): string {
    const c = command === undefined ? undefined : this.commands.find((x) => x.name === command);
    if (!c) {
      const options: [string, string][] = [['-V, --version', 'print the version'], [HELP_OPTION, HELP_TEXT]];
      const commands: [string, string][] = [...this.commands.map((x): [string, string] => [`${x.name} [options]`, x.description]), ['help [command]', HELP_TEXT]];
      const width = Math.max(...[...options, ...commands].map(([t]) => t.length));
      return `Usage: ${this.name} [options] [command]\n\n${wrap(this.description, 0)}\n\nOptions:\n${table(options, width)}\n\nCommands:\n${table(commands, width)}\n`;
    }
    const describe = (o: OptionSpec): string => {
      const extra = [
        o.choices ? `(choices: ${o.choices.map((v) => JSON.stringify(v)).join(', ')})` : '',
        o.repeatable ? '(default: [])' : o.default !== undefined ? `(default: ${JSON.stringify(o.default)})` : !takesValue(o) ? '(default: false)' : '',
      ].filter(Boolean);
      return [o.description, ...extra].join(' ');
    };
    return `Usage: ${this.name} ${c.name} [options]\n\n${wrap(c.description, 0)}\n\nOptions:\n${table([...c.options.map((o): [string, string] => [o.flags, describe(o)]), [HELP_OPTION, HELP_TEXT]])}\n`;
  }

  /** Every help text by command name ("" for the program's). */
  helpTree(): Record<string, string> {
    return Object.fromEntries([['', this.help()], ...this.commands.map((c) => [c.name, this.help(c.name)])]);
  }

  /**
   * Runs the command `argv` names (the arguments after the program) with its
   * options. Help and the version go to stdout; a usage error goes to
   * stderr followed by the help. Both end in UsageExit.
   */
  async run(argv: readonly string[], out: (s: string) => void = (s) => void process.stdout.write(s), err: (s: string) => void = (s) => void process.stderr.write(s)): Promise<void> {
    const usage = (message: string, command?: string): never => {
      err(`error: ${message}\n\n${this.help(command)}`);
      throw new UsageExit(message, 2);
    };
    const done = (text: string): never => {
      out(text);
      throw new UsageExit('printed', 0);
    };
    const [first, ...rest] = argv;
    if (first === undefined) {
      err(this.help());
      throw new UsageExit('no command', 2);
    }
    if (first === '-V' || first === '--version') done(`${this.version}\n`);
    if (first === '-h' || first === '--help') done(this.help());
    if (first === 'help') {
      if (rest[0] !== undefined && !this.commands.some((c) => c.name === rest[0])) usage(`unknown command '${rest[0]}'`);
      done(this.help(rest[0]));
    }
    const command = this.commands.find((c) => c.name === first);
    if (!command) return usage(first.startsWith('-') ? `unknown option '${first}'` : `unknown command '${first}'`);
    if (rest.includes('-h') || rest.includes('--help')) done(this.help(command.name));

    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({
        args: [...rest],
        strict: true,
        allowPositionals: true,
        options: Object.fromEntries(command.options.map((o) => [longName(o), { type: takesValue(o) ? 'string' as const : 'boolean' as const, multiple: o.repeatable === true }])),
      });
    } catch (e) {
      const m = (e as Error).message;
      const opt = /'(-[^' ]+)/.exec(m)?.[1];
      const spec = command.options.find((o) => `--${longName(o)}` === opt);
      if ((e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return usage(`unknown option '${opt}'`, command.name);
      if (spec && takesValue(spec)) return usage(`option '${spec.flags}' argument missing`, command.name);
      return usage(m, command.name);
    }
    if (parsed.positionals.length > 0) usage(`too many arguments for '${command.name}'. Expected 0 arguments but got ${parsed.positionals.length}.`, command.name);
    const values: OptionValues = {};
    for (const o of command.options) {
      const v = parsed.values[longName(o)] as string | boolean | string[] | undefined;
      if (v === undefined && o.required) usage(`required option '${o.flags}' not specified`, command.name);
      if (typeof v === 'string' && o.choices && !o.choices.includes(v)) usage(`option '${o.flags}' argument '${v}' is invalid. Allowed choices are ${o.choices.join(', ')}.`, command.name);
      values[camel(longName(o))] = v ?? (o.repeatable ? [] : takesValue(o) ? o.default : false);
    }
    await command.action(values);
  }
}
