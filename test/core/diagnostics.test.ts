/** node:diagnostics_channel events of every Channel: msgchannel:connect, msgchannel:close, msgchannel:error. */
import dc from 'node:diagnostics_channel';
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Channel,
  DIAGNOSTICS_CHANNELS,
  TimeoutError,
  type CloseEvent,
  type ConnectEvent,
  type ErrorEvent,
} from '../../channel.js';
import { openHandles, sleep } from '../helpers.js';

function record(): { events: [string, unknown][]; stop: () => void } {
  const events: [string, unknown][] = [];
  const subs = Object.values(DIAGNOSTICS_CHANNELS).map((name) => {
    const fn = (message: unknown): void => void events.push([name, message]);
    dc.subscribe(name, fn);
    return () => dc.unsubscribe(name, fn);
  });
  return { events, stop: () => subs.forEach((u) => u()) };
}

test('the channel names are stable', () => {
  assert.equal(
    { ...DIAGNOSTICS_CHANNELS },
    { connect: 'msgchannel:connect', close: 'msgchannel:close', error: 'msgchannel:error' },
  );
});

test('connect and close: both ends of a TCP connection, with isServer, and a clean close', async () => {
  const { events, stop } = record();
  try {
    const listener = Channel.listen('127.0.0.1', 0);
    const { port } = await listener.listening;
    const [client, server] = await Promise.all([Channel.connect('127.0.0.1', port), listener.accept()]);
    await listener.close();
    const connects = events.filter(([n]) => n === 'msgchannel:connect').map(([, m]) => m as ConnectEvent);
    assert.is(connects.length, 2);
    assert.ok(connects.some((c) => c.channel === client && !c.isServer));
    assert.ok(connects.some((c) => c.channel === server! && c.isServer));
    await client.close();
    await server!.closed;
    await sleep(5);
    const closes = events.filter(([n]) => n === 'msgchannel:close').map(([, m]) => m as CloseEvent);
    assert.is(closes.length, 2);
    for (const c of closes) assert.is(c.error, undefined);
    assert.is(events.filter(([n]) => n === 'msgchannel:error').length, 0);
  } finally {
    stop();
  }
});

test('error: a channel destroyed with an error publishes it, then its close carries it; a failed connect publishes its target', async () => {
  const { events, stop } = record();
  try {
    const [a, b] = Channel.pair();
    const boom = new TimeoutError('boom');
    a.destroy(boom);
    assert.is(await a.closed, boom);
    await b.closed;
    const errors = events.filter(([n]) => n === 'msgchannel:error').map(([, m]) => m as ErrorEvent);
    assert.ok(errors.some((e) => e.channel === a && e.error === boom));
    const closes = events.filter(([n]) => n === 'msgchannel:close').map(([, m]) => m as CloseEvent);
    assert.ok(closes.some((c) => c.channel === a && c.error === boom));
    // A port nobody listens on: a free one, taken and released.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    await Channel.connect('127.0.0.1', port).then(
      () => assert.unreachable('connected'),
      () => {},
    );
    const failed = events
      .filter(([n]) => n === 'msgchannel:error')
      .map(([, m]) => m as ErrorEvent)
      .find((e) => e.channel === undefined);
    assert.ok(failed, 'a connect failure event');
    assert.is(failed!.target, `127.0.0.1:${port}`);
    assert.is((failed!.error as Error & { code?: string }).code, 'ECONNREFUSED');
  } finally {
    stop();
  }
});

test('with nobody subscribed nothing is published (and nothing breaks)', async () => {
  for (const name of Object.values(DIAGNOSTICS_CHANNELS)) assert.is(dc.channel(name).hasSubscribers, false);
  const [a, b] = Channel.pair();
  await a.send('x');
  assert.is(String(await b.recv()), 'x');
  a.destroy(new Error('unobserved'));
  await b.closed;
  await sleep(50);
  assert.equal(openHandles(), []);
});

test.run();
