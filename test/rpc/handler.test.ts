/**
 * Whatever a request handler returns or throws is safe (issue 22, item 10): a thenable whose `then`
 * getter throws, a Proxy, a tampered promise, a Uint8Array subclass whose getters throw. Each gets
 * a reply (or an error reply), frees its `maxPending` slot, and never crashes the process; the
 * crash case runs in a child process.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, RemoteError, RequestChannel, type RequestHandler } from '../../channel.js';
import { childKind, spawnChild, tell } from '../hardening/child.js';
import { openHandles, sleep, unhandled } from '../helpers.js';

/** A Uint8Array whose own getters throw: only its internal slots tell its bytes. */
class Booby extends Uint8Array {
  override get byteLength(): number {
    throw new Error('byteLength getter');
  }
  override get length(): number {
    throw new Error('length getter');
  }
  override get buffer(): ArrayBuffer {
    throw new Error('buffer getter');
  }
  override get byteOffset(): number {
    throw new Error('byteOffset getter');
  }
}

/** A RequestChannel pair in memory, the server side answering with `onRequest`, at most `maxPending` at once. */
function pair(onRequest: RequestHandler, maxPending = 2): { rc: RequestChannel; srv: RequestChannel } {
  const [a, b] = Channel.pair();
  return { rc: new RequestChannel(a, { timeout: 2000 }), srv: new RequestChannel(b, { onRequest, maxPending }) };
}

if (childKind === 'rpc-async-booby') {
  // An async handler returning a Uint8Array subclass whose byteLength getter throws.
  const { rc } = pair(async () => new Booby([1, 2, 3]));
  process.on('unhandledRejection', (error) => {
    tell({ unhandled: String(error) });
    process.exit(3);
  });
  const reply = await rc.request('go');
  tell({ reply: [...reply] });
  await rc.close();
}

const hostile: [string, () => unknown][] = [
  [
    'a thenable whose then getter throws',
    () => ({
      get then() {
        throw new Error('then getter');
      },
    }),
  ],
  [
    'a Proxy whose every trap throws',
    () =>
      new Proxy(
        {},
        {
          get() {
            throw new Error('get trap');
          },
          getPrototypeOf() {
            throw new Error('getPrototypeOf trap');
          },
          has() {
            throw new Error('has trap');
          },
        },
      ),
  ],
  [
    'a revoked Proxy',
    () => {
      const { proxy, revoke } = Proxy.revocable({}, {});
      revoke();
      return proxy;
    },
  ],
  [
    'a Proxy of a Uint8Array',
    () =>
      new Proxy(new Uint8Array(3), {
        getPrototypeOf() {
          throw new Error('getPrototypeOf trap');
        },
      }),
  ],
  [
    'a promise whose own then getter throws',
    () => {
      const p = Promise.resolve('x');
      // eslint-disable-next-line @typescript-eslint/no-floating-promises -- the promise is the handler's value, returned below
      Object.defineProperty(p, 'then', {
        get() {
          throw new Error('own then getter');
        },
      });
      return p;
    },
  ],
  [
    'a promise whose constructor getter throws',
    () => {
      const p = Promise.resolve('x');
      // eslint-disable-next-line @typescript-eslint/no-floating-promises -- the promise is the handler's value, returned below
      Object.defineProperty(p, 'constructor', {
        get() {
          throw new Error('constructor getter');
        },
      });
      return p;
    },
  ],
  [
    'a thenable calling back twice, both ways, then throwing',
    () => ({
      then(resolve: (v: unknown) => void, reject: (e: unknown) => void) {
        resolve('first');
        resolve('second');
        reject(new Error('late'));
        throw new Error('after');
      },
    }),
  ],
  ['a Uint8Array subclass whose getters throw (returned synchronously)', () => new Booby([7, 8])],
  ['a function', () => () => 'x'],
];

if (childKind === undefined) {
  for (const [what, make] of hostile) {
    test(`a handler returning ${what}: every request is answered and no slot leaks`, async () => {
      const { rc, srv } = pair(() => make() as never, 2);
      // Three times maxPending, one after the other: a leaked slot would wedge the channel.
      for (let i = 0; i < 6; i++) {
        let outcome: string;
        try {
          outcome = `reply ${[...(await rc.request(`r${i}`))].join(',')}`;
        } catch (error) {
          assert.instance(error, RemoteError, `request ${i}: ${String(error)}`);
          outcome = 'RemoteError';
        }
        assert.ok(outcome.length > 0);
      }
      assert.is(srv.running, 0);
      assert.is(srv.stats.requestsReceived, 6);
      assert.is(srv.stats.repliesSent + srv.stats.errorsSent, 6, 'one answer per request');
      assert.is(srv.stats.protocolErrors, 0);
      await rc.close();
      await srv.closed;
    });
  }

  test('a Uint8Array subclass whose getters throw is sent as its bytes', async () => {
    const { rc, srv } = pair(async () => new Booby([1, 2, 3]));
    assert.equal([...(await rc.request('x'))], [1, 2, 3]);
    await rc.close();
    await srv.closed;
  });

  test('child: an async handler returning a Uint8Array subclass whose byteLength getter throws does not crash the process', async () => {
    const child = spawnChild(import.meta.url, 'rpc-async-booby');
    try {
      const m = await child.next(10_000);
      assert.equal(m, { reply: [1, 2, 3] });
      assert.is(await child.exited, 0);
    } finally {
      await child.kill();
    }
  });

  test('nothing left behind: no unhandled rejection, socket or timer', async () => {
    await sleep(50);
    assert.equal(unhandled, []);
    assert.equal(openHandles(), []);
  });

  test.run();
}
