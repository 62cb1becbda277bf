/**
 * A chaos proxy on 127.0.0.1 for session tests: it forwards each connection to a target port,
 * and on demand resets every connection (RST both ways), stalls them silently (every byte dropped
 * both ways, no FIN, no RST: a NAT timeout or a pulled cable), or points new connections at
 * another target (a restarted server).
 */
import * as net from 'node:net';

interface Link {
  client: net.Socket;
  upstream: net.Socket;
  stalled: boolean;
}

function reset(socket: net.Socket): void {
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

export class ChaosProxy {
  readonly #server: net.Server;
  readonly #links = new Set<Link>();
  #target: number;
  /** Connections made through the proxy so far. */
  accepted = 0;
  port = 0;

  private constructor(target: number) {
    this.#target = target;
    this.#server = net.createServer((client) => this.#onClient(client));
  }

  static async start(target: number): Promise<ChaosProxy> {
    const proxy = new ChaosProxy(target);
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.#server.address() as net.AddressInfo).port;
    return proxy;
  }

  /** New connections go to `port` from now on. */
  retarget(port: number): void {
    this.#target = port;
  }

  #onClient(client: net.Socket): void {
    this.accepted++;
    const upstream = net.connect(this.#target, '127.0.0.1');
    const link: Link = { client, upstream, stalled: false };
    this.#links.add(link);
    const drop = (): void => {
      this.#links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    client.on('data', (d: Buffer) => {
      if (!link.stalled) upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (!link.stalled) client.write(d);
    });
    client.on('end', () => !link.stalled && upstream.end());
    upstream.on('end', () => !link.stalled && client.end());
  }

  /** Connections open now (stalled ones included). */
  get links(): number {
    return this.#links.size;
  }

  /** Reset every open connection, both sides. */
  cut(): void {
    for (const link of this.#links) {
      this.#links.delete(link);
      reset(link.client);
      reset(link.upstream);
    }
  }

  /** Wait until a connection is open through the proxy (the session has resumed), then reset it. */
  async cutConnected(patience = 5000): Promise<void> {
    const end = Date.now() + patience;
    while (this.#links.size === 0) {
      if (Date.now() > end) throw new Error('no connection through the proxy to cut');
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    this.cut();
  }

  /** From now on drop every byte of every open connection, both ways, and never close them. */
  stall(): void {
    for (const link of this.#links) link.stalled = true;
  }

  async close(): Promise<void> {
    for (const link of this.#links) {
      link.client.destroy();
      link.upstream.destroy();
    }
    this.#links.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
