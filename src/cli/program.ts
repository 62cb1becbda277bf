/**
 * `msgchannel`: netcat for framed messages, a thin shell over the public API (listen, connect,
 * send, bench). The program: the commander wiring of the four commands (arguments, options, help
 * texts), the options they share, and main(argv), which maps commander's exits to exit codes and
 * reports any other failure in one line.
 */
import { Command, CommanderError, Option } from 'commander';
import { msg } from '../../channel.js';
import { parseFraming, positiveInt, seconds, unescapeDelimiter } from './args.js';
import { benchCommand, type BenchFlags } from './bench/command.js';
import { compareCommand } from './bench/compare.js';
import { MODES } from './bench/driver.js';
import { connectCommand, type ConnectFlags } from './commands/connect.js';
import { listenCommand, type ListenFlags } from './commands/listen.js';
import { sendCommand, type SendFlags } from './commands/send.js';
import { EXIT_USAGE, err, fail } from './output.js';
import { addTransportOptions, parseListenTarget, parseTarget, type SocketPath, type Target } from './transport.js';
import type { Address } from './args.js';

declare const __VERSION__: string | undefined;
const VERSION = typeof __VERSION__ === 'string' ? __VERSION__ : '0.0.0-dev';

const framingOption = (): Option =>
  new Option(
    '-f, --framing <name>',
    'wire format: msg, int32, openflow, tinyproto, ltprotocol[:H,B], pythonConnection[:authkey=KEY], lengthPrefixed:KEY=VALUE,...',
  )
    .default(msg, 'msg')
    .argParser(parseFraming);

/** bench's --framing keeps its text: each worker thread parses it again (a Framing holds functions). */
const benchFramingOption = (): Option =>
  new Option('-f, --framing <name>', framingOption().description)
    .default('msg')
    .argParser((text: string) => (parseFraming(text), text));

const TARGET_HELP = 'the server: [HOST:]PORT, a Unix socket path (with a /), or a ws:// or wss:// URL';

function nonNegativeSeconds(text: string): number {
  return text.trim() === '0' ? 0 : seconds(text);
}

function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
}

export function program(): Command {
  const cli = new Command('msgchannel')
    .description('Framed messages from the command line: netcat for msgchannel framings (MSG, ltprotocol, int32, ...).')
    .version(VERSION)
    .configureOutput({ outputError: (s, write) => write(`${err.red('msgchannel:')} ${s.replace(/^error: /, '')}`) })
    .exitOverride();
  cli.addHelpText(
    'after',
    examples([
      'msgchannel listen 5000 --echo          # an echo server on 127.0.0.1:5000',
      'msgchannel connect 127.0.0.1:5000      # type lines; each is one message',
      'msgchannel send 127.0.0.1:5000 hello --expect 1',
      'msgchannel bench                       # self-contained benchmark',
      '',
      'Exit codes: 0 done, 1 error, 2 bad usage, 124 timeout. Colors only on a TTY; NO_COLOR disables them.',
    ]),
  );

  const listen = cli
    .command('listen')
    .description(
      "accept clients; print each one's arrival and departure and each message with its length (text as text, anything else as a hexdump)",
    )
    .argument(
      '<[host:]port|path>',
      'where to listen: the host defaults to 127.0.0.1, port 0 picks a free one; or a Unix socket path (with a /)',
      parseListenTarget,
    )
    .option('-e, --echo', 'send every message back')
    .addOption(
      new Option(
        '-x, --exec <cmd>',
        'run CMD (a shell command) per message, with the message on stdin; its stdout is the reply',
      ).conflicts('echo'),
    )
    .option('-q, --quiet', 'no line per message (arrivals, departures and errors only): for a bench target')
    .addOption(framingOption())
    .addHelpText(
      'after',
      examples([
        'msgchannel listen 5000                          # print what clients send',
        'msgchannel listen 0.0.0.0:5000 --echo           # echo, on every interface',
        'msgchannel listen 5000 --echo --quiet           # a bench target: no line per message',
        "msgchannel listen 5000 --exec 'tr a-z A-Z'      # reply with the message in capitals",
        'msgchannel listen 9999 --framing ltprotocol:H,B # an ltprotocol peer',
        'msgchannel listen 6000 --framing pythonConnection:authkey=secret',
      ]),
    )
    .action((target: Address | SocketPath, flags: ListenFlags) => listenCommand(target, flags));

  const connect = cli
    .command('connect')
    .description(
      'connect; each stdin line becomes one message and each message received is printed; exits at the end of stdin once the replies are in',
    )
    .argument('<target>', TARGET_HELP, parseTarget)
    .option('--hex', 'stdin lines are hex bytes ("01 ff 2a"), and received messages are printed in hex')
    .option(
      '--raw',
      'stdin is raw bytes split on --delimiter; received messages are written raw, each followed by the delimiter',
    )
    .addOption(
      new Option('-d, --delimiter <str>', 'the --raw delimiter (escapes: \\n \\0 \\r \\t \\xHH)')
        .default(Buffer.from('\n'), '\\n')
        .argParser(unescapeDelimiter),
    )
    .addOption(
      new Option('-w, --wait <seconds>', 'after the end of stdin, how long to wait for missing replies')
        .default(2)
        .argParser(seconds),
    )
    .addOption(new Option('-t, --timeout <seconds>', 'connect timeout').default(10).argParser(seconds))
    .addOption(framingOption())
    .addHelpText(
      'after',
      examples([
        'msgchannel connect 127.0.0.1:5000',
        "printf 'one\\ntwo\\n' | msgchannel connect 5000          # two messages, then exit once both replies are in",
        "echo '01 02 ff' | msgchannel connect 5000 --hex",
        "find . -print0 | msgchannel connect 5000 --raw -d '\\0'",
      ]),
    )
    .action((target: Target, flags: ConnectFlags) => connectCommand(target, flags));

  const send = cli
    .command('send')
    .description('send the messages, print the first N replies, and exit (non-zero on timeout): for scripts')
    .argument('<target>', TARGET_HELP, parseTarget)
    .argument('<message...>', 'one message per argument (UTF-8, or hex with --hex)')
    .addOption(
      new Option('-n, --expect <n>', 'replies to wait for and print').default(0).argParser(positiveInt('--expect', 0)),
    )
    .addOption(
      new Option('-t, --timeout <seconds>', 'for the whole exchange; then exit 124').default(5).argParser(seconds),
    )
    .option('--hex', 'the messages are hex bytes, and replies are printed in hex')
    .addOption(framingOption())
    .addHelpText(
      'after',
      examples([
        'msgchannel send 127.0.0.1:5000 hello',
        'msgchannel send 5000 ping ping --expect 2 --timeout 1',
        'msgchannel send 5000 --hex "00 00 00 c8" --framing ltprotocol --expect 1',
        'reply=$(msgchannel send 5000 "status?" -n 1) || echo "no answer"',
      ]),
    )
    .action((target: Target, messages: string[], flags: SendFlags) => sendCommand(target, messages, flags));

  const bench = cli
    .command('bench')
    .description(
      'load a server: echo round trips, one-way sends or requests, closed loop or at a fixed rate (--rate), against a server or an in-process one when none is given; prints a table, or JSON',
    )
    .argument(
      '[target]',
      `${TARGET_HELP} (e.g. msgchannel listen PORT --echo --quiet); omit for a self-contained run`,
      parseTarget,
    )
    .addOption(
      new Option('-m, --mode <mode>', 'echo: round trips; send: one-way messages; request: RequestChannel requests')
        .choices(MODES)
        .default('echo'),
    )
    .addOption(new Option('-s, --size <bytes>', 'message size').default(64).argParser(positiveInt('--size', 0)))
    .addOption(new Option('-c, --count <n>', 'measured messages in all').argParser(positiveInt('--count')))
    .addOption(
      new Option(
        '-d, --duration <seconds>',
        'measure this long after the warmup, then stop: what is still in flight is abandoned and counted (5 s when neither --count nor --duration is given)',
      ).argParser(seconds),
    )
    .addOption(new Option('-C, --connections <n>', 'connections (default 1)').argParser(positiveInt('--connections')))
    .addOption(new Option('--concurrency <n>').argParser(positiveInt('--concurrency')).hideHelp())
    .addOption(
      new Option('-W, --window <n>', 'messages in flight per connection (1 over tinyproto, which is half-duplex)')
        .default(16)
        .argParser(positiveInt('--window')),
    )
    .addOption(
      new Option(
        '-R, --rate <n>',
        'open loop: N messages/s in all, spread over the connections; latency counts from each intended send time',
      ).argParser(positiveInt('--rate')),
    )
    .addOption(
      new Option('--warmup <seconds>', 'run this long first, measured but not reported')
        .default(0)
        .argParser(nonNegativeSeconds),
    )
    .addOption(
      new Option('--workers <n>', 'worker threads to share the connections')
        .default(1)
        .argParser(positiveInt('--workers')),
    )
    .addOption(
      new Option('--runs <n>', 'repeat the run N times, one result with every run (for bench compare)')
        .default(1)
        .argParser(positiveInt('--runs')),
    )
    .option('--json', 'print the result as JSON (config, environment, runs, samples, percentiles, warnings, errors)')
    .option('--svg <file>', 'write the latency distribution (a percentile plot) to FILE')
    .addOption(
      new Option(
        '-t, --timeout <seconds>',
        'to connect, and the longest wait for an answer while messages are in flight; then exit 124',
      )
        .default(10)
        .argParser(seconds),
    )
    .addOption(benchFramingOption())
    .addHelpText(
      'after',
      examples([
        'msgchannel bench                                  # 5 s, 64 B messages, in-process echo server',
        'msgchannel bench --size 65536 --count 10000',
        'msgchannel bench 127.0.0.1:5000 --connections 8 --duration 10',
        'msgchannel bench 5000 --rate 20000 --connections 100 --warmup 2 --duration 30',
        'msgchannel bench --mode request --runs 5 --json > before.json',
        'msgchannel bench compare before.json after.json',
      ]),
    )
    .action((target: Target | undefined, flags: BenchFlags) => benchCommand(target, flags));

  // TLS, Unix sockets and auth: the same options, parsed in one place (transport.ts), for every command.
  addTransportOptions(listen, 'server');
  for (const c of [connect, send, bench]) addTransportOptions(c, 'client');

  bench
    .command('compare')
    .description(
      "compare two results of bench --json: each metric's change, and Welch's t-test over the runs (--runs 2 or more on each side)",
    )
    .argument('<a.json>', 'the baseline')
    .argument('<b.json>', 'the result to compare with it')
    .addHelpText('after', examples(['msgchannel bench compare before.json after.json']))
    .action((a: string, b: string) => compareCommand(a, b));

  for (const c of [...cli.commands, ...bench.commands]) {
    c.exitOverride();
  }
  return cli;
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit 0; usage errors were already printed in one line.
      process.exit(e.exitCode === 0 ? 0 : EXIT_USAGE);
    }
    fail(e);
  }
}
