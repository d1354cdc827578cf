// Lifecycle: connect() and disconnect() (clients/README.md, "States").
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Gateway, freePort, jwt, newClient, subscribe, unix } from './helpers.mjs';

const secret = 'lifecycle-test-secret';
const fixture = fileURLToPath(new URL('fixtures/exit-after-disconnect.mjs', import.meta.url));

/** runFixture runs the exit fixture and resolves with its output and how long it lived after printing "disconnected". */
async function runFixture(t, env) {
  const child = spawn(process.execPath, [fixture], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  let disconnectedAt;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (s) => {
    out += s;
    if (disconnectedAt === undefined && out.includes('disconnected')) disconnectedAt = performance.now();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
  const [code, signal] = await once(child, 'exit');
  clearTimeout(timer);
  return { out, code, signal, lingered: performance.now() - disconnectedAt };
}

describe('lifecycle', { concurrency: true }, () => {
  let g;
  test.before(async () => {
    g = await Gateway.start(['-auth-secret', secret, '-history-size', '100']);
  });
  test.after(() => g.kill());

  test('after disconnect() a connected client leaves no timer behind: the Node.js process exits, and a pending publish fails with disconnected', async (t) => {
    const r = await runFixture(t, { URL: g.url, SECRET: secret, MODE: 'connected' });
    assert.equal(r.signal, null, `killed: still running 10 s later; output ${r.out}`);
    assert.equal(r.code, 0);
    assert.match(r.out, /publish disconnected/);
    assert.match(r.out, /disconnected 1000/);
    assert.ok(r.lingered < 2000, `exited ${r.lingered} ms after disconnect()`);
  });

  test('after disconnect() during the backoff wait the Node.js process exits at once', async (t) => {
    const r = await runFixture(t, { URL: `ws://127.0.0.1:${await freePort()}/ws`, SECRET: secret, MODE: 'connecting' });
    assert.equal(r.signal, null, `killed: still running 10 s later; output ${r.out}`);
    assert.equal(r.code, 0);
    assert.ok(r.lingered < 2000, `exited ${r.lingered} ms after disconnect()`);
  });

  test('states go disconnected → connecting → connected → disconnected; connect() again resubscribes and recovers what was published meanwhile', async (t) => {
    const { c, log } = newClient(t, g.url, {
      getToken: async () => jwt(secret, { sub: 'cycler', exp: unix() + 60, channels: ['*'] }),
    });
    const states = [];
    for (const kind of ['connecting', 'connected', 'disconnected']) c.on(kind, () => states.push(c.state));
    assert.equal(c.state, 'disconnected');
    subscribe(c, log, 'cycle');
    c.connect();
    c.connect(); // no effect while connecting
    await log.waitFor((l) => l.count('cycle.subscribed') === 1, 'subscribed');
    await g.publish('cycle', 1);
    await log.waitFor((l) => l.count('cycle.message') === 1, 'message 1');
    c.disconnect();
    c.disconnect(); // no second event
    assert.deepEqual(log.all('disconnected'), [{ code: 1000, reason: 'disconnect' }]);
    await g.publish('cycle', 2);

    c.connect();
    const again = await log.waitFor((l) => l.all('cycle.subscribed')[1], 'subscribed again');
    assert.equal(again.recovered, true);
    await g.publish('cycle', 3);
    await log.waitFor((l) => l.count('cycle.message') === 3, 'messages 2 and 3');
    assert.deepEqual(log.all('cycle.message').map((m) => m.data), [1, 2, 3]);
    assert.deepEqual(states, ['connecting', 'connected', 'disconnected', 'connecting', 'connected']);
  });
});
