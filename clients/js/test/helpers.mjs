// helpers.mjs: what the client tests share. Every test runs against the
// real gateway binary (SHARDGATE_BIN, default bin/shardgate at the
// repository root); nothing here imitates the gateway.
//
//   Gateway    a gateway process: start (parses its "shardgate listening"
//              log line), restart on the same port, SIGKILL, SIGTERM,
//              publish / disconnect through the admin API, /metrics
//   Proxy      a TCP proxy the test can cut (destroy every piped socket),
//              take down (refuse connections) and stall (swallow the
//              gateway's bytes), counting the connections it accepted
//   Log        events recorded in order, with waitFor(predicate)
//   newClient  a Client over `ws`, disconnected after the test
//   jwt        HS256 tokens signed with node:crypto
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { Client } from '../dist/index.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = process.env.SHARDGATE_BIN
  ? path.resolve(process.env.SHARDGATE_BIN)
  : path.join(repoRoot, 'bin/shardgate');
export const NATS_BIN = process.env.SHARDGATE_NATS_BIN
  ? path.resolve(process.env.SHARDGATE_NATS_BIN)
  : path.join(repoRoot, 'bin/nats-server');

// Every child process, killed when the test process exits whatever the
// tests did (after hooks kill them first, this is the backstop).
const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
});

/** freePort returns a loopback port that was free a moment ago (for a process restarted on the same port). */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Log records events in order; waitFor resolves once a predicate over them holds. */
export class Log {
  entries = [];
  #waiters = new Set();

  add(kind, value) {
    this.entries.push({ kind, value, at: performance.now() });
    for (const w of this.#waiters) w();
  }

  /** all returns the values of kind, in order. */
  all(kind) {
    return this.entries.filter((e) => e.kind === kind).map((e) => e.value);
  }

  count(kind) {
    return this.all(kind).length;
  }

  /** waitFor resolves with pred()'s first truthy value, checked now and after every add. */
  waitFor(pred, what, ms = 15000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        let v;
        try {
          v = pred(this);
        } catch (err) {
          done();
          reject(err);
          return;
        }
        if (v) {
          done();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        done();
        const tail = this.entries.slice(-15).map((e) => `${e.kind} ${JSON.stringify(e.value)}`);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; last events:\n  ${tail.join('\n  ')}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }
}

/**
 * Gateway is one shardgate process on a loopback port. start() waits for
 * its "shardgate listening" line; restart() brings it back on the same
 * port. Its stderr is always drained (a full pipe would stall it) and the
 * last lines are kept for a failing test's message.
 */
export class Gateway {
  constructor(args = [], port = 0) {
    this.args = args;
    this.port = port;
    this.lines = [];
    this.proc = undefined;
  }

  static async start(args = [], { port = 0 } = {}) {
    const g = new Gateway(args, port);
    await g.start();
    return g;
  }

  async start() {
    if (this.proc) throw new Error('gateway already running');
    const proc = spawn(
      BIN,
      ['-listen', `127.0.0.1:${this.port}`, '-admin', '127.0.0.1:0', '-log-format', 'json', ...this.args],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.proc = proc;
    children.add(proc);
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        children.delete(proc);
        resolve({ code, signal });
      });
    });
    const listening = new Promise((resolve, reject) => {
      let buf = '';
      proc.stderr.setEncoding('utf8');
      proc.stderr.on('data', (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          this.lines.push(line);
          if (this.lines.length > 200) this.lines.shift();
          let rec;
          try {
            rec = JSON.parse(line);
          } catch {
            continue;
          }
          if (rec.msg === 'shardgate listening') resolve(rec);
        }
      });
      proc.on('error', reject);
      this.exited.then(({ code, signal }) =>
        reject(new Error(`${BIN} exited (${code ?? signal}) before listening:\n${this.lines.join('\n')}`)),
      );
    });
    const rec = await listening;
    this.wsAddr = rec.ws;
    this.adminAddr = rec.admin;
    this.port = Number(rec.ws.split('/')[0].split(':').pop());
  }

  /** url is the WebSocket URL, ws://127.0.0.1:PORT/ws. */
  get url() {
    return `ws://${this.wsAddr}`;
  }

  get admin() {
    return `http://${this.adminAddr}`;
  }

  /** signal sends sig and waits for the process to exit. */
  async signal(sig) {
    const proc = this.proc;
    if (!proc) return;
    this.proc = undefined;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    return this.exited;
  }

  kill() {
    return this.signal('SIGKILL');
  }

  /** term sends SIGTERM: the gateway drains (close 1001 to every client) and exits. */
  term() {
    return this.signal('SIGTERM');
  }

  async restart() {
    await this.kill();
    await this.start();
  }

  async api(path, body) {
    const res = await fetch(this.admin + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const out = await res.json();
    if (!res.ok || !out.ok) throw new Error(`POST ${path} ${JSON.stringify(body)}: ${res.status} ${JSON.stringify(out)}`);
    return out;
  }

  /** publish sends data to channel through the admin API: {ok, offset, epoch} with history on. */
  publish(channel, data) {
    return this.api('/api/publish', { channel, data });
  }

  /** broadcast sends data to every connection (no channel). */
  broadcast(data) {
    return this.api('/api/publish', { data });
  }

  /** disconnectSub closes every connection of sub with 4003. */
  disconnectSub(sub) {
    return this.api('/api/disconnect', { sub });
  }

  /** metric sums the samples of name whose labels include every one of labels. */
  async metric(name, labels = {}) {
    const text = await (await fetch(this.admin + '/metrics')).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (!m || m[1] !== name) continue;
      if (Object.entries(labels).every(([k, v]) => (m[2] || '').includes(`${k}="${v}"`))) sum += Number(m[3]);
    }
    return sum;
  }

  /** logTail is the gateway's last log lines, for a failing assertion's message. */
  logTail(n = 20) {
    return this.lines.slice(-n).join('\n');
  }
}

/**
 * Proxy forwards loopback TCP connections to a target port. cut() destroys
 * every piped socket at once (the client sees its connection drop, as on a
 * network loss), down() also refuses new connections until up(), and
 * stall() lets the client's bytes through but swallows the gateway's.
 */
export class Proxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.sockets = new Set();
    this.refusing = false;
    this.stalled = false;
    this.log = new Log();
    this.server = net.createServer((client) => this.#accept(client));
  }

  static async start(targetPort) {
    const p = new Proxy(targetPort);
    p.server.listen(0, '127.0.0.1');
    await once(p.server, 'listening');
    p.port = p.server.address().port;
    return p;
  }

  #accept(client) {
    this.log.add('accepted', this.log.count('accepted') + 1);
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.on('data', (chunk) => {
      if (!this.stalled) client.write(chunk);
    });
  }

  /** url is the proxied WebSocket URL. */
  get url() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** accepted is how many connections the proxy has accepted. */
  get accepted() {
    return this.log.count('accepted');
  }

  cut() {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  down() {
    this.refusing = true;
    this.cut();
  }

  up() {
    this.refusing = false;
  }

  stall() {
    this.stalled = true;
  }

  async close() {
    this.cut();
    this.server.close();
    await once(this.server, 'close');
  }
}

/** jwt signs claims with HS256. */
export function jwt(secret, claims) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = enc({ alg: 'HS256', typ: 'JWT' }) + '.' + enc(claims);
  return head + '.' + createHmac('sha256', secret).update(head).digest('base64url');
}

/** unix is the time in Unix seconds. */
export const unix = () => Math.floor(Date.now() / 1000);

/**
 * newClient makes a Client over `ws` whose events go to log (kinds
 * connecting, connected, disconnected, message, error) and that is
 * disconnected when the test ends. Short delays keep the tests quick.
 */
export function newClient(t, urls, opts = {}, log = new Log()) {
  const c = new Client(urls, { WebSocket, minReconnectDelay: 50, maxReconnectDelay: 400, ...opts });
  for (const kind of ['connecting', 'connected', 'disconnected', 'message', 'error']) c.on(kind, (e) => log.add(kind, e));
  t.after(() => c.disconnect());
  return { c, log };
}

/**
 * subscribe subscribes c to channel with handlers that record into log:
 * `sub.message` {data, offset}, `sub.subscribed` info, `sub.unsubscribed`
 * info, `sub.error` code.
 */
export function subscribe(c, log, channel) {
  return c.subscribe(channel, {
    message: (data, info) => log.add(`${channel}.message`, { data, offset: info.offset }),
    subscribed: (info) => log.add(`${channel}.subscribed`, info),
    unsubscribed: (info) => log.add(`${channel}.unsubscribed`, info),
    error: (err) => log.add(`${channel}.error`, err.code),
  });
}

/** stopAll ends gateways and proxies (for after hooks). */
export async function stopAll(...things) {
  await Promise.all(things.filter(Boolean).map((x) => (x instanceof Proxy ? x.close() : x.kill())));
}

/** poll resolves once fn() (maybe async) is truthy, checking every 50 ms: for state with no event to await (a metric). */
export async function poll(fn, what, ms = 15000) {
  const until = performance.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (performance.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * startNATS runs NATS_BIN with JetStream on a loopback port, storing in a
 * fresh temporary directory, and resolves once it is ready.
 */
export async function startNATS() {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const os = await import('node:os');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shardgate-js-nats-'));
  const port = await freePort();
  const proc = spawn(NATS_BIN, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(proc);
  const exited = new Promise((resolve) => proc.on('exit', () => (children.delete(proc), resolve())));
  let out = '';
  await new Promise((resolve, reject) => {
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      if (out.length < 100000) out += chunk;
      if (out.includes('Server is ready')) resolve();
    });
    proc.on('error', reject);
    exited.then(() => reject(new Error(`${NATS_BIN} exited before it was ready:\n${out}`)));
  });
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      proc.kill('SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
