// Publish (clients/README.md, "Publish"): the gateway's answer, or the
// client's own `disconnected` and `timeout`.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Gateway, Proxy, jwt, newClient, subscribe, unix } from './helpers.mjs';

const secret = 'publish-test-secret';

describe('publish', { concurrency: true }, () => {
  let g;
  test.before(async () => {
    g = await Gateway.start(['-auth-secret', secret]);
  });
  test.after(() => g.kill());

  const token = (sub, publish) => async () => jwt(secret, { sub, exp: unix() + 60, channels: ['*'], publish });

  test('a publish the token grants resolves on published and reaches subscribers; one it does not grant rejects with forbidden', async (t) => {
    const { c, log } = newClient(t, g.url, { getToken: token('publisher', ['granted.*']) });
    subscribe(c, log, 'granted.news');
    c.connect();
    await log.waitFor((l) => l.count('granted.news.subscribed') === 1, 'subscribed');
    assert.equal(await c.publish('granted.news', { hello: 'world' }), undefined);
    await log.waitFor((l) => l.count('granted.news.message') === 1, 'its own message');
    assert.deepEqual(log.all('granted.news.message')[0].data, { hello: 'world' });
    await assert.rejects(c.publish('other', 1), { name: 'ShardgateError', code: 'forbidden' });
    await assert.rejects(c.publish('bad channel!', 1), { code: 'bad_channel' });
  });

  test('a publish while disconnected fails at once with disconnected and is never sent later', async (t) => {
    const { c, log } = newClient(t, g.url, { getToken: token('early', ['*']) });
    subscribe(c, log, 'early');
    const early = c.publish('early', 'queued?');
    let settled = false;
    early.catch(() => (settled = true));
    await Promise.resolve();
    assert.ok(settled, 'settled at once, without waiting for any I/O or timer');
    await assert.rejects(early, { code: 'disconnected' });
    c.connect();
    await assert.rejects(c.publish('early', 'while connecting'), { code: 'disconnected' });
    await log.waitFor((l) => l.count('early.subscribed') === 1, 'subscribed');
    await c.publish('early', 'connected');
    await log.waitFor((l) => l.count('early.message') === 1, 'the message published once connected');
    // Both publishes go through the same connection in order: had either
    // earlier one been queued, it would have arrived first.
    assert.deepEqual(log.all('early.message').map((m) => m.data), ['connected']);
  });

  test('a publish whose connection is lost before the answer rejects with disconnected and is not sent again after the reconnect', async (t) => {
    const proxy = await Proxy.start(g.port);
    t.after(() => proxy.close());
    const { c, log } = newClient(t, proxy.url, { getToken: token('inflight', ['*']) });
    subscribe(c, log, 'inflight');
    c.connect();
    await log.waitFor((l) => l.count('inflight.subscribed') === 1, 'subscribed');
    const lost = c.publish('inflight', 'lost');
    proxy.cut();
    await assert.rejects(lost, { code: 'disconnected' });
    await log.waitFor((l) => l.count('inflight.subscribed') === 2, 'resubscribed');
    await c.publish('inflight', 'after');
    await log.waitFor((l) => l.count('inflight.message') === 1, 'the later message');
    assert.deepEqual(log.all('inflight.message').map((m) => m.data), ['after']);
  });

  test('a publish without an answer rejects with timeout after publishTimeout', async (t) => {
    const proxy = await Proxy.start(g.port);
    t.after(() => proxy.close());
    const { c, log } = newClient(t, proxy.url, { getToken: token('stalled', ['*']), publishTimeout: 300 });
    c.connect();
    await log.waitFor((l) => l.count('connected') === 1, 'connected');
    proxy.stall();
    const t0 = performance.now();
    await assert.rejects(c.publish('stalled', 1), { code: 'timeout' });
    const waited = performance.now() - t0;
    assert.ok(waited >= 299 && waited < 1000, `timed out after ${waited} ms`);
    assert.equal(c.state, 'connected', 'a timeout does not end the connection');
  });
});
