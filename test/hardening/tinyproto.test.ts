/**
 * tinyproto answers under attack: a peer that floods headers and never reads our one-byte answers
 * must not grow the victim's memory (answers count against the send budget: reading stops above
 * the send high-water mark, the connection fails past maxQueuedBytes). The victim runs as a child
 * process with a 256 MiB heap, so a regression kills the child, not the test runner. Also: a junk
 * answer byte rejects the send with ProtocolError, and tinyproto 2.0's refusal (254 zero bytes)
 * is a ConnectionRefusedError.
 */
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, ConnectionRefusedError, ProtocolError, tinyproto } from '../../channel.js';
import { openHandles, rejectsWith, resultWithin, sleep, unhandled } from '../helpers.js';
import { memoryPair } from '../../src/core/memory.js';
import { childKind, firstRss, peakRss, spawnChild, tell } from './child.js';

// ------------------------------------------------------------------ the victim (child process)

if (childKind === 'tinyproto-server') {
  // Reads every message it gets (the "app that reads everything"), echoes nothing.
  const listener = Channel.listen('127.0.0.1', 0, { framing: tinyproto });
  const { port } = await listener.listening;
  const failures: string[] = [];
  void (async () => {
    for await (const ch of listener) {
      void (async () => {
        try {
          for await (const m of ch) if (String(m) === 'ping') await ch.send('pong');
        } catch (error) {
          failures.push((error as { code?: string }).code ?? String(error));
        }
      })();
    }
  })();
  tell({ port });
  setInterval(() => tell({ t: Date.now(), rss: process.memoryUsage().rss, failures }), 100).unref();
}

// ------------------------------------------------------------------ tests

/** Write `unit` repeatedly for `ms` without ever reading; resolves with the bytes the kernel took. */
async function flood(port: number, unit: Buffer, ms: number): Promise<{ sent: number; socket: net.Socket }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise<void>((r) => socket.once('connect', () => r()));
  socket.write(Buffer.from([0xff])); // our init byte; the victim's init byte is never read by us
  socket.pause(); // never read the answers
  const block = Buffer.concat(Array.from({ length: 16384 }, () => unit)); // 64 KiB of headers
  let sent = 0;
  const until = Date.now() + ms;
  while (Date.now() < until && !socket.destroyed) {
    if (socket.write(block)) sent += block.length;
    else {
      sent += block.length;
      const drained = await Promise.race([
        new Promise<boolean>((r) => socket.once('drain', () => r(true))),
        sleep(200).then(() => false),
      ]);
      if (!drained && socket.writableLength > 4 * block.length) break; // the victim stopped reading: as intended
    }
  }
  return { sent, socket };
}

if (childKind === undefined) {
  for (const [name, unit] of [
    ['refused headers (FF FF FF FF)', Buffer.from([0xff, 0xff, 0xff, 0xff])],
    ['accepted empty messages (00 00 00 00)', Buffer.from([0, 0, 0, 0])],
  ] as const) {
    test(`a peer flooding ${name} and never reading its answers: memory stays bounded, a good client is served`, async () => {
      const child = spawnChild(import.meta.url, 'tinyproto-server', ['--max-old-space-size=256']);
      try {
        const { port } = await child.next();
        const base = await firstRss(child);
        const attack = await flood(port, unit, 2500);
        // A good client is still served while the attacker is connected.
        const good = await Channel.connect('127.0.0.1', port, { framing: tinyproto, timeout: 5000 });
        await good.send('ping');
        assert.is(String(await good.recv({ timeout: 5000 })), 'pong');
        // Every sample from the start of the attack until 500 ms after it.
        const until = Date.now() + 500;
        const peak = await peakRss(child, until);
        const grown = (peak - base) / 2 ** 20;
        console.log(
          `  tinyproto flood (${name}): ${(attack.sent / 2 ** 20).toFixed(1)} MiB of headers pushed in 2.5 s, victim RSS +${grown.toFixed(1)} MiB`,
        );
        assert.ok(
          grown < 64,
          `the victim grew by ${grown.toFixed(1)} MiB after the attacker pushed ${(attack.sent / 2 ** 20).toFixed(1)} MiB`,
        );
        assert.is(child.proc.exitCode, null, `the victim is alive (stderr: ${child.stderr.slice(0, 500)})`);
        attack.socket.destroy();
        await good.close();
      } finally {
        await child.kill();
      }
    });
  }

  test('in memory: the victim stops reading headers while its answers are unread, and resumes when they are read', async () => {
    const [attacker, victimSide] = memoryPair();
    const victim = new Channel(victimSide, { framing: tinyproto, isServer: true });
    attacker.write(Buffer.from([0xff])); // init
    const headers = Buffer.alloc(64 * 1024, 0xff); // 16,384 refused headers a chunk
    const total = 8 * 2 ** 20;
    let written = 0;
    while (written < total) {
      const more = attacker.write(headers);
      written += headers.length;
      if (!more) {
        const drained = await Promise.race([
          new Promise<boolean>((r) => attacker.once('drain', () => r(true))),
          sleep(300).then(() => false),
        ]);
        if (!drained) break; // the victim stopped reading: as intended
      }
    }
    await sleep(50);
    const consumed = written - attacker.writableLength;
    // It reads until a send high-water mark (1 MiB) of answers waits (4 MiB of headers), plus a chunk or two.
    assert.ok(
      consumed <= 5 * 2 ** 20,
      `the victim consumed ${(consumed / 2 ** 20).toFixed(1)} MiB of headers without its answers being read`,
    );
    assert.ok(victim.isOpen);
    // Reading the answers lets it go on: everything is answered in the end.
    let answers = 0;
    attacker.on('data', (c: Buffer) => (answers += c.length));
    for (let i = 0; i < 300 && answers < 1 + written / 4; i++) await sleep(10);
    assert.is(answers, 1 + written / 4, 'one answer per header (and the init byte)');
    victim.destroy();
    attacker.destroy();
  });

  test('answers past maxQueuedBytes fail that connection with SendQueueFullError', async () => {
    const listener = Channel.listen('127.0.0.1', 0, {
      framing: tinyproto,
      maxQueuedBytes: 1024,
      sendHighWaterMark: 64 * 1024,
    });
    const { port } = await listener.listening;
    const accepted = listener.accept();
    const attack = await flood(port, Buffer.from([0xff, 0xff, 0xff, 0xff]), 300);
    try {
      const ch = (await accepted)!;
      const closed = await resultWithin(ch.closed, 5000);
      ch.destroy();
      assert.is((closed as { code?: string } | undefined)?.code, 'ERR_SEND_QUEUE_FULL');
    } finally {
      attack.socket.destroy();
      await listener.close();
    }
  });

  test('a junk answer byte rejects the waiting send with ProtocolError, not ERR_CHANNEL_CLOSED', async () => {
    const server = net.createServer((s) => {
      s.write(Buffer.from([0xff])); // init
      let got = 0;
      s.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= 5 && got - c.length < 5) s.write(Buffer.from([0x42])); // after our init byte and our header: a junk answer
      });
      s.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    try {
      const ch = await Channel.connect('127.0.0.1', port, { framing: tinyproto });
      try {
        const e = await rejectsWith(ch.send('hello'), 'ERR_PROTOCOL');
        assert.instance(e, ProtocolError);
        await ch.closed;
      } finally {
        ch.destroy();
      }
    } finally {
      server.close();
    }
  });

  test("tinyproto 2.0's refusal, 254 zero bytes, is a ConnectionRefusedError", async () => {
    const server = net.createServer((s) => {
      s.on('error', () => {});
      s.resume();
      s.end(Buffer.alloc(254)); // con.send(bytearray(SC_CONLIMIT)); then close
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    try {
      const e = await rejectsWith(Channel.connect('127.0.0.1', port, { framing: tinyproto }), 'ERR_CONNECTION_LIMIT');
      assert.instance(e, ConnectionRefusedError);
    } finally {
      server.close();
    }
  });

  test('no unhandled rejection, socket or timer left', async () => {
    for (let i = 0; i < 100 && openHandles().length > 0; i++) await sleep(10); // sockets the raw servers are still closing
    assert.equal(unhandled, []);
    assert.equal(openHandles(), []);
  });

  test.run();
}
