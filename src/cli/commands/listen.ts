/**
 * `msgchannel listen`: accept clients and print each arrival, departure and message; optionally
 * echo every message back (--echo) or reply with a shell command's output (--exec).
 */
import { spawn } from 'node:child_process';
import dc from 'node:diagnostics_channel';
import { Channel, DIAGNOSTICS_CHANNELS, type ErrorEvent, type Framing } from '../../../channel.js';
import { showAddress, type Address } from '../args.js';
import { codeOf, describeError, err, fail, out, print, showMessage } from '../output.js';
import {
  listenOptions,
  showTarget,
  showTransport,
  transportOf,
  type SocketPath,
  type TransportFlags,
} from '../transport.js';

export interface ListenFlags extends TransportFlags {
  echo?: boolean;
  exec?: string;
  quiet?: boolean;
  framing: Framing;
}

function peerOf(ch: Channel): string {
  return ch.ip === undefined ? 'client' : showAddress({ host: ch.ip, port: ch.port ?? 0 });
}

/**
 * Clients that fail their handshake (auth, tinyproto's init, pythonConnection's authkey) never come
 * out of the listener: the public `msgchannel:error` diagnostics channel names them, and a channel
 * whose `ready` rejects failed its handshake. Every channel in this process is one of the listener's.
 */
function showFailedHandshakes(): void {
  const seen = new WeakSet<Channel>();
  dc.subscribe(DIAGNOSTICS_CHANNELS.error, (message) => {
    const ch = (message as ErrorEvent).channel;
    if (ch === undefined || seen.has(ch)) return;
    seen.add(ch);
    ch.ready.catch((e: unknown) => {
      const text = e instanceof Error ? e.message : String(e);
      print(
        `${out.red('x')} ${peerOf(ch)} handshake failed: ${text}${codeOf(e) === undefined ? '' : ` (${codeOf(e)})`}`,
      );
    });
  });
}

/** Runs CMD with the message on stdin; resolves with its stdout. */
function runExec(
  command: string,
  input: Buffer,
  peer: string,
): Promise<{ stdout: Buffer; status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, {
      shell: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, MSGCHANNEL_PEER: peer },
    });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdin.on('error', () => {}); // CMD may exit without reading its input
    child.on('error', reject);
    child.on('close', (status) => resolve({ stdout: Buffer.concat(chunks), status, stderr }));
    child.stdin.end(input);
  });
}

async function serveClient(ch: Channel, flags: ListenFlags): Promise<void> {
  const peer = peerOf(ch);
  print(`${out.green('+')} ${peer} connected`);
  let count = 0;
  const typed = ch.framing.hasType;
  try {
    for (;;) {
      const { type, data } = await ch.recvFrame();
      count++;
      if (!flags.quiet) print(showMessage(`${out.cyan('<')} ${peer} `, data, typed ? type : undefined));
      if (flags.echo) await ch.send(data, { type });
      else if (flags.exec !== undefined) {
        const r = await runExec(flags.exec, data, peer);
        if (r.status !== 0)
          process.stderr.write(
            `${err.yellow('msgchannel:')} --exec command exited with ${r.status ?? 'a signal'} for a message from ${peer}${r.stderr ? `: ${r.stderr.trim().split('\n')[0]}` : ''}\n`,
          );
        await ch.send(r.stdout, { type });
      }
    }
  } catch (e) {
    if (codeOf(e) !== 'ERR_CHANNEL_CLOSED') {
      print(`${out.red('!')} ${peer} ${describeError(e, { address: peer })}`);
    }
    // A reply we could not send (--exec output too large for the framing) leaves the channel open.
    if (ch.isOpen) ch.destroy(e instanceof Error ? e : undefined);
  }
  const why = await ch.closed;
  const plural = count === 1 ? '' : 's';
  print(
    `${out.yellow('-')} ${peer} disconnected after ${count} message${plural}${why ? out.dim(` (${codeOf(why) ?? why.message})`) : ''}`,
  );
}

export async function listenCommand(target: Address | SocketPath, flags: ListenFlags): Promise<void> {
  const transport = transportOf(flags, 'server');
  showFailedHandshakes();
  // reuse: false, so that a port another server holds is reported instead of shared (SO_REUSEPORT).
  const listener = Channel.listen({ ...listenOptions(target, transport, flags.framing), reuse: false });
  let bound: Address | SocketPath;
  try {
    const a = await listener.listening;
    bound = 'path' in target ? target : { host: a.address, port: a.port };
  } catch (e) {
    fail(e, { action: 'listen', address: showTarget(target) });
  }
  const mode =
    (flags.echo ? ', echoing' : flags.exec !== undefined ? `, replying with: ${flags.exec}` : '') +
    (flags.quiet ? ', quiet' : '');
  print(
    `listening on ${out.bold(showTarget(bound))} (framing ${flags.framing.name}${showTransport(transport)}${mode})`,
  );
  const stop = (): void => {
    void listener.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    for await (const ch of listener) void serveClient(ch, flags);
  } catch (e) {
    fail(e, { action: 'listen', address: showTarget(bound) });
  }
}
