/**
 * RequestChannel over real TCP connections on 127.0.0.1: matching by id out of order, remote
 * errors, timeouts and aborts (late replies dropped and counted), closing, maxPending on both
 * sides, one-way order, heartbeats, stats, and nothing left behind.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ChannelClosedError,
  ErrorCode,
  MessageTooLargeError,
  RemoteError,
  RequestChannel,
  TimeoutError,
  decodeEnvelope,
  encodeEnvelope,
  int32,
  ltprotocol,
  msg,
  openflow,
  packetmqFraming,
  pythonConnection,
  tinyproto,
  type Framing,
  type RequestReply,
} from '../../channel.js';
import { gate, openHandles, rejectsWith, sleep, tcpPair, unhandled, until } from '../helpers.js';

test('RemoteError is branded, has code ERR_REMOTE, and is listed in ErrorCode', () => {
  const e = new RemoteError('boom', { remoteCode: 'EBOOM' });
  assert.is(e.code, 'ERR_REMOTE');
  assert.is(ErrorCode.REMOTE, 'ERR_REMOTE');
  assert.is(e.remoteCode, 'EBOOM');
  assert.is(e.name, 'RemoteError');
  assert.ok(e instanceof RemoteError);
});

test('many outstanding requests, answered in reverse order, each get their own reply', async () => {
  const { client, server } = await tcpPair();
  const N = 200;
  const held: { body: Buffer; open: (v: RequestReply) => void }[] = [];
  const all = gate();
  const srv = new RequestChannel(server, {
    onRequest: (body) => {
      const g = gate<RequestReply>();
      held.push({ body, open: g.open });
      if (held.length === N) all.open();
      return g.promise;
    },
  });
  const rc = new RequestChannel(client);
  const replies = Array.from({ length: N }, (_, i) => rc.request(`req ${i}`));
  await all.promise;
  assert.is(rc.outstanding, N);
  assert.is(rc.pending, N, 'pending: the deprecated name of outstanding');
  assert.is(srv.running, N);
  for (const h of held.reverse()) h.open(`reply to ${h.body}`);
  const got = await Promise.all(replies);
  got.forEach((b, i) => assert.is(String(b), `reply to req ${i}`));
  assert.is(rc.outstanding, 0);
  assert.is(rc.stats.requestsSent, N);
  assert.is(rc.stats.repliesReceived, N);
  assert.is(srv.stats.requestsReceived, N);
  assert.is(srv.stats.repliesSent, N);
  await rc.close();
  await srv.closed;
});

test('random handler delays: replies matched by id, not by arrival order', async () => {
  const { client, server } = await tcpPair();
  const srv = new RequestChannel(server, {
    onRequest: async (body) => {
      await sleep(Math.floor(Math.random() * 15));
      return Buffer.concat([Buffer.from('re:'), body]);
    },
  });
  const rc = new RequestChannel(client);
  const bodies = Array.from({ length: 300 }, (_, i) => Buffer.from([i & 0xff, i >> 8, 7]));
  const got = await Promise.all(bodies.map((b) => rc.request(b)));
  got.forEach((g, i) => assert.equal(g, Buffer.concat([Buffer.from('re:'), bodies[i]!])));
  await srv.close();
  await rc.closed;
});

test('a handler that throws or rejects: RemoteError with the remote message and code, no remote stack; the channel carries on', async () => {
  const { client, server } = await tcpPair();
  const srv = new RequestChannel(server, {
    onRequest: async (body) => {
      const what = String(body);
      if (what === 'throw') throw Object.assign(new Error('no such thing'), { code: 'ENOENT' });
      if (what === 'string') throw 'a plain string';
      if (what === 'number') return 42 as unknown as string;
      if (what === 'long') throw new Error('x'.repeat(5000));
      return 'ok';
    },
  });
  const rc = new RequestChannel(client);
  const e = (await rejectsWith(rc.request('throw'), 'ERR_REMOTE')) as RemoteError;
  assert.instance(e, RemoteError);
  assert.is(e.message, 'no such thing');
  assert.is(e.remoteCode, 'ENOENT');
  assert.not.match(String(e.stack), /request\.test/); // the remote stack never crosses the wire
  const s = (await rejectsWith(rc.request('string'), 'ERR_REMOTE')) as RemoteError;
  assert.is(s.message, 'a plain string');
  assert.is(s.remoteCode, undefined);
  const n = (await rejectsWith(rc.request('number'), 'ERR_REMOTE')) as RemoteError;
  assert.match(n.message, /returned 42, expected a Uint8Array or a string/);
  assert.is(n.remoteCode, 'ERR_INVALID_REPLY');
  const l = (await rejectsWith(rc.request('long'), 'ERR_REMOTE')) as RemoteError;
  assert.is(l.message.length, 1024);
  assert.is(String(await rc.request('fine')), 'ok');
  assert.is(rc.stats.remoteErrors, 4);
  assert.is(srv.stats.errorsSent, 4);
  await rc.close();
  await srv.closed;
  // A synchronous throw too.
  const pair = await tcpPair();
  const sync = new RequestChannel(pair.server, {
    onRequest: () => {
      throw new TypeError('sync');
    },
  });
  const rc2 = new RequestChannel(pair.client);
  const te = (await rejectsWith(rc2.request('x'), 'ERR_REMOTE')) as RemoteError;
  assert.is(te.message, 'sync');
  await rc2.close();
  await sync.closed;
});

test('no handler on the other side: RemoteError with remoteCode ERR_NO_HANDLER', async () => {
  const { client, server } = await tcpPair();
  const srv = new RequestChannel(server);
  const rc = new RequestChannel(client);
  const e = (await rejectsWith(rc.request('anyone?'), 'ERR_REMOTE')) as RemoteError;
  assert.is(e.remoteCode, 'ERR_NO_HANDLER');
  await rc.close();
  await srv.closed;
});

test('a request that times out rejects with TimeoutError; its late reply is dropped and counted, never given to a later request', async () => {
  const { client, server } = await tcpPair();
  const slow = gate();
  const srv = new RequestChannel(server, {
    onRequest: async (body) => {
      if (String(body) === 'slow') await slow.promise;
      return `answer to ${body}`;
    },
  });
  const rc = new RequestChannel(client, { timeout: 5000 });
  const t0 = Date.now();
  const e = await rejectsWith(rc.request('slow', { timeout: 60 }), 'ERR_TIMEOUT');
  assert.instance(e, TimeoutError);
  assert.ok(Date.now() - t0 >= 55, `timed out after ${Date.now() - t0} ms`);
  assert.is(rc.stats.timeouts, 1);
  const next = rc.request('next'); // id 2, sent before the late reply to id 1 arrives
  slow.open();
  assert.is(String(await next), 'answer to next');
  await until(() => rc.stats.lateReplies === 1, 2000, 'the late reply');
  assert.is(rc.stats.repliesReceived, 1);
  assert.is(rc.stats.protocolErrors, 0);
  await rc.close();
  await srv.closed;
});

test('the default timeout (one shared timer) and a per-request timeout; timeout 0 means none', async () => {
  const { client, server } = await tcpPair();
  const never = gate<RequestReply>();
  const srv = new RequestChannel(server, { onRequest: () => never.promise });
  const rc = new RequestChannel(client, { timeout: 40 });
  const t0 = Date.now();
  const a = rc.request('a').catch((e: unknown) => ({ e, at: Date.now() - t0 }));
  const b = rc.request('b', { timeout: 150 }).catch((e: unknown) => ({ e, at: Date.now() - t0 }));
  const c = rc.request('c').catch((e: unknown) => ({ e, at: Date.now() - t0 }));
  let dDone = false;
  const d = rc.request('d', { timeout: 0 }).catch((e: unknown) => {
    dDone = true;
    return e;
  });
  const [ra, rb, rcc] = (await Promise.all([a, b, c])) as { e: unknown; at: number }[];
  for (const r of [ra!, rb!, rcc!]) assert.instance(r.e, TimeoutError);
  assert.ok(ra!.at >= 35 && ra!.at < 140, `a at ${ra!.at}`);
  assert.ok(rb!.at >= 145, `b at ${rb!.at}`);
  assert.is(dDone, false);
  assert.is(rc.stats.timeouts, 3);
  await rc.close();
  assert.instance(await d, ChannelClosedError);
  await srv.closed;
});

test('abort: rejects with the signal reason, the late reply is counted; an aborted signal rejects at once', async () => {
  const { client, server } = await tcpPair();
  const release = gate();
  const srv = new RequestChannel(server, {
    onRequest: async () => {
      await release.promise;
      return 'late';
    },
  });
  const rc = new RequestChannel(client);
  const ac = new AbortController();
  const p = rc.request('x', { signal: ac.signal });
  await until(() => srv.running === 1);
  const reason = new Error('changed my mind');
  ac.abort(reason);
  try {
    await p;
    assert.unreachable();
  } catch (error) {
    assert.is(error, reason);
  }
  assert.is(rc.stats.aborted, 1);
  assert.is(rc.outstanding, 0);
  const gone = new AbortController();
  gone.abort(new Error('already'));
  try {
    await rc.request('y', { signal: gone.signal });
    assert.unreachable();
  } catch (error) {
    assert.is((error as Error).message, 'already');
  }
  release.open();
  await until(() => rc.stats.lateReplies === 1);
  await rc.close();
  await srv.closed;
});

test('close rejects every pending request with ChannelClosedError and aborts the handlers on the other side', async () => {
  const { client, server } = await tcpPair();
  const reasons: unknown[] = [];
  const started = gate();
  let n = 0;
  const srv = new RequestChannel(server, {
    onRequest: (_body, { signal }) =>
      new Promise<RequestReply>((_resolve, reject) => {
        if (++n === 3) started.open();
        signal.addEventListener('abort', () => {
          reasons.push(signal.reason);
          reject(signal.reason);
        });
      }),
  });
  const rc = new RequestChannel(client);
  const pending = [rc.request('1'), rc.request('2'), rc.request('3')];
  await started.promise;
  await rc.close();
  for (const p of pending) await rejectsWith(p, 'ERR_CHANNEL_CLOSED');
  assert.is(await srv.closed, undefined); // the client closed cleanly
  await until(() => reasons.length === 3);
  for (const r of reasons) assert.instance(r, ChannelClosedError); // the peer closed the connection
  await rejectsWith(rc.request('after'), 'ERR_CHANNEL_CLOSED');
  await rejectsWith(rc.send('after'), 'ERR_CHANNEL_CLOSED');
});

test("the responder closing or failing rejects the requester's pending requests with ChannelClosedError or the cause", async () => {
  {
    const { client, server } = await tcpPair();
    const srv = new RequestChannel(server, { onRequest: () => new Promise<string>(() => {}) });
    const rc = new RequestChannel(client);
    const p = rc.request('x');
    await until(() => srv.running === 1);
    await srv.close();
    const e = await rejectsWith(p, 'ERR_CHANNEL_CLOSED');
    assert.match(e.message, /peer closed/);
    assert.is(await rc.closed, undefined);
  }
  {
    const { client, server } = await tcpPair();
    const srv = new RequestChannel(server, { onRequest: () => new Promise<string>(() => {}) });
    const rc = new RequestChannel(client);
    const p = rc.request('x');
    await until(() => srv.running === 1);
    const cause = new TimeoutError('local failure');
    rc.destroy(cause);
    const e = await rejectsWith(p, 'ERR_TIMEOUT');
    assert.is(e, cause);
    assert.is(await rc.closed, cause);
    await srv.closed;
  }
});

test('maxPending on the requester: further requests wait their turn (in call order, within their timeout) and are sent as slots free', async () => {
  const { client, server } = await tcpPair();
  const held: (() => void)[] = [];
  const srv = new RequestChannel(server, {
    onRequest: (body) => {
      const g = gate();
      held.push(() => g.open());
      return g.promise.then(() => body);
    },
  });
  const rc = new RequestChannel(client, { maxPending: 4 });
  const ps = Array.from({ length: 10 }, (_, i) => rc.request(String(i)));
  const late = rc.request('times out waiting', { timeout: 50 }).catch((e: unknown) => e);
  await until(() => srv.stats.requestsReceived === 4);
  await sleep(20);
  assert.is(srv.stats.requestsReceived, 4);
  assert.is(rc.outstanding, 4);
  assert.is(rc.waiting, 7);
  assert.instance(await late, TimeoutError);
  assert.is(rc.waiting, 6);
  while (held.length > 0 || rc.outstanding > 0) {
    await until(() => held.length > 0);
    held.shift()!();
    await sleep(1);
  }
  const got = await Promise.all(ps);
  got.forEach((b, i) => assert.is(String(b), String(i)));
  assert.is(srv.stats.requestsReceived, 10); // the one that timed out while waiting was never sent
  assert.is(rc.stats.requestsSent, 10);
  await rc.close();
  await srv.closed;
});

test('maxPending on the responder: at most maxPending handlers run; maxPending more are read and held, then reading pauses (the Channel highWaterMark pushes back)', async () => {
  const { client, server } = await tcpPair({ highWaterMark: 4096 });
  let running = 0;
  let peak = 0;
  const release = gate();
  const srv = new RequestChannel(server, {
    maxPending: 2,
    onRequest: async (body) => {
      peak = Math.max(peak, ++running);
      await release.promise;
      running--;
      return body.subarray(0, 4);
    },
  });
  const rc = new RequestChannel(client, { maxPending: 2000 });
  const body = Buffer.alloc(1024, 1);
  const ps = Array.from({ length: 1000 }, () => rc.request(body));
  await until(() => srv.running === 2);
  await sleep(50);
  assert.is(srv.running, 2);
  assert.is(srv.heldRequests, 2);
  assert.is(srv.stats.requestsReceived, 4);
  // Reading paused: the server's Channel took at most about its highWaterMark beyond those four
  // (the rest of the 1 MiB waits in the kernel's buffers and the client's send queue).
  const buffered = server.stats.messagesReceived;
  assert.ok(buffered < 200, `server channel decoded ${buffered} of 1000 requests while paused`);
  release.open();
  const got = await Promise.all(ps);
  assert.is(got.length, 1000);
  assert.is(peak, 2);
  assert.is(srv.stats.requestsReceived, 1000);
  await rc.close();
  await srv.closed;
});

test('one-way messages keep wire order among themselves, interleaved with requests both ways', async () => {
  const { client, server } = await tcpPair();
  const srv = new RequestChannel(server, {
    onRequest: async (body) => {
      await srv.send(`srv one-way during ${body}`);
      return `re ${body}`;
    },
  });
  const rc = new RequestChannel(client);
  const N = 500;
  const requests: Promise<Buffer>[] = [];
  for (let i = 0; i < N; i++) {
    void rc.send(`one-way ${i}`);
    if (i % 5 === 0) requests.push(rc.request(`r${i}`));
  }
  const got: string[] = [];
  for await (const m of srv) {
    got.push(String(m));
    if (got.length === N) break;
  }
  assert.equal(
    got,
    Array.from({ length: N }, (_, i) => `one-way ${i}`),
  );
  const replies = await Promise.all(requests);
  replies.forEach((r, k) => assert.is(String(r), `re r${k * 5}`));
  const back: string[] = [];
  for (let k = 0; k < requests.length; k++) back.push(String(rc.tryRecv() ?? (await rc.recv())));
  assert.equal(
    back,
    requests.map((_, k) => `srv one-way during r${k * 5}`),
  );
  assert.is(rc.stats.oneWaySent, N);
  assert.is(srv.stats.oneWayReceived, N);
  await rc.close();
  await srv.closed;
});

test('recv() with a timeout or a signal takes no message; after close, buffered ones are discarded and recv rejects', async () => {
  const { client, server } = await tcpPair();
  const srv = new RequestChannel(server);
  const rc = new RequestChannel(client);
  await rejectsWith(srv.recv({ timeout: 20 }), 'ERR_TIMEOUT');
  const ac = new AbortController();
  const aborted = srv.recv({ signal: ac.signal });
  const next = srv.recv();
  ac.abort(new Error('stop'));
  await rejectsWith(
    aborted.catch((e: Error) => Promise.reject(Object.assign(e, { code: 'STOP' }))),
    'STOP',
  );
  await rc.send('first');
  assert.is(String(await next), 'first');
  await rc.send('unread');
  await until(() => srv.bufferedMessages === 1);
  await srv.close();
  await rejectsWith(srv.recv(), 'ERR_CHANNEL_CLOSED');
  await rc.closed;
});

test('sizes: a request or reply above maxMessageSize is refused before anything is written (a reply as RemoteError)', async () => {
  const { client, server } = await tcpPair({ maxMessageSize: 100 });
  const srv = new RequestChannel(server, { onRequest: (body) => Buffer.alloc(Number(body), 1) });
  const rc = new RequestChannel(client);
  const e = await rejectsWith(rc.request(Buffer.alloc(99)), 'ERR_MESSAGE_TOO_LARGE');
  assert.instance(e, MessageTooLargeError);
  assert.is(rc.outstanding, 0);
  const r = (await rejectsWith(rc.request('200'), 'ERR_REMOTE')) as RemoteError;
  assert.is(r.remoteCode, 'ERR_MESSAGE_TOO_LARGE');
  assert.is((await rc.request('90')).length, 90);
  await rc.close();
  await srv.closed;
});

test('a request the channel refuses to queue (SendQueueFullError, the peer not reading) rejects at once, not at its timeout', async () => {
  const { client, server } = await tcpPair({ maxQueuedBytes: 256 * 1024, sendHighWaterMark: 16 * 1024 }, {});
  const rc = new RequestChannel(client, { timeout: 0, maxPending: Infinity });
  const body = Buffer.alloc(32 * 1024, 1);
  const settled: unknown[] = [];
  const ps = Array.from({ length: 200 }, () => rc.request(body).catch((e: unknown) => void settled.push(e)));
  await until(() => settled.length > 0, 5000, 'a refused request');
  const refused = settled[0] as Error & { code?: string };
  assert.is(refused.code, 'ERR_SEND_QUEUE_FULL');
  assert.ok(rc.outstanding < 200, `${rc.outstanding} pending`);
  assert.ok(rc.isOpen);
  server.destroy(); // never read: the rest reject with the close
  await Promise.all(ps);
  assert.is(settled.length, 200);
  await rc.closed;
});

test('stats: Channel counts messages and body bytes each way; RequestChannel counts what it did', async () => {
  const { client, server } = await tcpPair();
  assert.equal(client.stats, {
    messagesSent: 0,
    messagesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    bytesReadDirect: 0,
    sendsFailed: 0,
  });
  const srv = new RequestChannel(server, { onRequest: (body) => Buffer.concat([body, body]) });
  const rc = new RequestChannel(client);
  await rc.request('abc'); // 01 01 61 62 63 -> 02 01 61 62 63 61 62 63
  await rc.send('hi'); // 00 68 69
  await srv.recv();
  const big = Buffer.alloc(20_000, 7); // above the writer's copy limit: the uncopied path counts too
  await srv.send(big);
  assert.equal(await rc.recv(), big);
  assert.equal(client.stats, {
    messagesSent: 2,
    messagesReceived: 2,
    bytesSent: 5 + 3,
    bytesReceived: 8 + 20_001,
    bytesReadDirect: 0,
    sendsFailed: 0,
  });
  assert.equal(server.stats, {
    messagesSent: 2,
    messagesReceived: 2,
    bytesSent: 8 + 20_001,
    bytesReceived: 5 + 3,
    bytesReadDirect: 0,
    sendsFailed: 0,
  });
  assert.is(rc.stats.requestsSent, 1);
  assert.is(rc.stats.repliesReceived, 1);
  assert.is(rc.stats.oneWaySent, 1);
  assert.is(rc.stats.oneWayReceived, 1);
  assert.is(srv.stats.requestsReceived, 1);
  assert.is(srv.stats.repliesSent, 1);
  assert.is(srv.stats.oneWaySent, 1);
  await rc.close();
  await srv.closed;
});

test('heartbeat keeps an idle but alive channel open: pings answered with pongs', async () => {
  const { client, server } = await tcpPair();
  const srv = new RequestChannel(server, { heartbeat: { interval: 20, timeout: 40 } }); // pings the client too
  const rc = new RequestChannel(client, { heartbeat: { interval: 20, timeout: 40 } });
  await sleep(300);
  assert.ok(rc.isOpen && srv.isOpen);
  assert.ok(rc.stats.pingsSent + srv.stats.pingsSent > 0, 'someone pinged');
  assert.ok(rc.stats.pongsReceived + srv.stats.pongsReceived > 0, 'pings were answered');
  assert.ok(rc.stats.pingsReceived <= srv.stats.pingsSent);
  await rc.close();
  await srv.closed;
});

test('heartbeat closes a dead peer (a raw Channel that never reads) with TimeoutError; pending requests reject with it', async () => {
  const { client, server } = await tcpPair();
  const rc = new RequestChannel(client, { heartbeat: { interval: 20, timeout: 40 } });
  const t0 = Date.now();
  const p = rc.request('anyone?', { timeout: 0 });
  const e = await rejectsWith(p, 'ERR_TIMEOUT');
  const took = Date.now() - t0;
  assert.instance(e, TimeoutError);
  assert.match(e.message, /heartbeat/);
  assert.ok(took >= 55 && took < 1000, `closed after ${took} ms (interval 20, timeout 40)`);
  assert.instance(await rc.closed, TimeoutError);
  assert.is(rc.stats.pingsSent, 1);
  server.destroy();
});

test('heartbeat does not blame the peer while this side paused reading (its handlers are all busy)', async () => {
  const { client, server } = await tcpPair();
  const release = gate();
  const srv = new RequestChannel(server, {
    maxPending: 1,
    heartbeat: { interval: 10, timeout: 20 },
    onRequest: () => release.promise.then(() => 'done'),
  });
  const rc = new RequestChannel(client, { heartbeat: { interval: 10, timeout: 20 } });
  const a = rc.request('a');
  const b = rc.request('b');
  await sleep(150); // srv is paused (maxPending 1) with 'b' unread: no TimeoutError
  assert.ok(srv.isOpen);
  release.open();
  assert.equal([String(await a), String(await b)], ['done', 'done']);
  await rc.close();
  await srv.closed;
});

test('request timeouts above 2^31 - 1 ms, and Infinity, mean what they say (no 1 ms overflow); the heartbeat too', async () => {
  const { client, server } = await tcpPair();
  const srv = new RequestChannel(server, { onRequest: async (body) => (await sleep(50), body) });
  const rc = new RequestChannel(client, { timeout: 2 ** 31, heartbeat: { interval: 2 ** 31, timeout: 2 ** 31 } });
  assert.is(String(await rc.request('default')), 'default');
  assert.is(String(await rc.request('long', { timeout: 2 ** 32 })), 'long');
  assert.is(String(await rc.request('none', { timeout: Infinity })), 'none');
  const bad = await rc.request('x', { timeout: -1 }).then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.instance(bad, RangeError);
  await rc.close();
  await srv.closed;
});

test('options are checked: bad values throw RangeError/TypeError saying what was expected', () => {
  const [a] = [{} as never];
  assert.throws(() => new RequestChannel(a), /Expected a Channel/);
  const ch = {
    recv() {},
    send() {},
    maxMessageSize: 1,
    framing: { maxEncodableSize: 1 },
    closed: new Promise(() => {}),
  } as never;
  assert.throws(() => new RequestChannel(ch, { timeout: -1 }), /`timeout` to be a number of milliseconds >= 0/);
  assert.throws(() => new RequestChannel(ch, { maxPending: 0 }), /`maxPending` to be an integer >= 1/);
  assert.throws(() => new RequestChannel(ch, { heartbeat: { interval: 0, timeout: 5 } }), /heartbeat\.interval/);
  assert.throws(() => new RequestChannel(ch, { heartbeat: { interval: 5 } as never }), /both `interval` and `timeout`/);
  assert.throws(() => new RequestChannel(ch, { onRequest: 'x' as never }), /`onRequest` to be a function/);
});

test('the envelope on the wire: a request, its reply and a one-way are the documented bytes', async () => {
  const { client, server } = await tcpPair();
  const rc = new RequestChannel(client);
  const p = rc.request('hello');
  const req = await server.recv();
  assert.is(req.toString('hex'), '010168656c6c6f');
  assert.equal(decodeEnvelope(req), { kind: 'request', id: 1, payload: Buffer.from('hello') });
  await server.send(encodeEnvelope({ kind: 'reply', id: 1, payload: 'HELLO' }));
  assert.is(String(await p), 'HELLO');
  await rc.send('hi');
  assert.is((await server.recv()).toString('hex'), '006869');
  await rc.close();
  await server.closed;
});

test('works over every full-duplex framing: MSG, length-prefixed (with and without a type field), pythonConnection', async () => {
  const framings: [string, Framing][] = [
    ['msg', msg],
    ['int32', int32],
    ['ltprotocol', ltprotocol()],
    ['openflow', openflow],
    ['packetmq', packetmqFraming],
    ['pythonConnection', pythonConnection()],
  ];
  for (const [name, framing] of framings) {
    const { client, server } = await tcpPair({ framing });
    const srv = new RequestChannel(server, { onRequest: async (body) => `${name}: ${body}` });
    const rc = new RequestChannel(client);
    const got = await Promise.all(['a', 'b', 'c'].map((x) => rc.request(x)));
    assert.equal(got.map(String), [`${name}: a`, `${name}: b`, `${name}: c`], name);
    await rc.send(`one-way over ${name}`);
    assert.is(String(await srv.recv()), `one-way over ${name}`);
    await rc.close();
    await srv.closed;
  }
});

test('over tinyproto (half-duplex: one side sends at a time), one request at a time works', async () => {
  const { client, server } = await tcpPair({ framing: tinyproto });
  const srv = new RequestChannel(server, { onRequest: (body) => `tp: ${body}` });
  const rc = new RequestChannel(client, { maxPending: 1 });
  for (const x of ['a', 'b', 'c']) assert.is(String(await rc.request(x)), `tp: ${x}`);
  await rc.send('one-way');
  assert.is(String(await srv.recv()), 'one-way');
  await rc.close();
  await srv.closed;
});

test('nothing left behind: no unhandled rejection, socket or timer', async () => {
  await sleep(50);
  assert.equal(unhandled, []);
  assert.equal(openHandles(), []);
});

test.run();
