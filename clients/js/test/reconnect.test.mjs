// Reconnecting (clients/README.md, "Reconnecting" and "Close codes")
// against real gateway processes: killed, drained, kicking a user.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { Gateway, Proxy, freePort, jwt, newClient, subscribe, unix } from './helpers.mjs';

describe('reconnect', { concurrency: true }, () => {
  test('after a SIGKILL and a restart on the same port the client reconnects, resubscribes (recovered:false: new epoch) and gets the messages published after', async (t) => {
    const g = await Gateway.start(['-history-size', '100'], { port: await freePort() });
    t.after(() => g.kill());
    const { c, log } = newClient(t, g.url);
    subscribe(c, log, 'news');
    c.connect();
    const [first] = await log.waitFor((l) => l.all('news.subscribed')[0] && l.all('news.subscribed'), 'subscribed');
    assert.equal(first.recovered, undefined, 'the first subscribe does not ask to recover');
    await g.publish('news', 'before');
    await log.waitFor((l) => l.count('news.message') === 1, 'the message before the kill');

    await g.kill();
    await log.waitFor((l) => l.all('connecting').some((e) => e.code === 1006), 'connecting after the connection was lost');
    await g.start();
    const again = await log.waitFor((l) => l.all('news.subscribed')[1], 'subscribed after the restart');
    assert.equal(again.recovered, false, 'the restarted gateway has a new epoch: nothing to recover from');
    assert.notEqual(again.epoch, first.epoch);
    assert.equal(c.state, 'connected');

    await g.publish('news', 'after');
    await log.waitFor((l) => l.count('news.message') === 2, 'the message after the restart');
    assert.deepEqual(log.all('news.message').map((m) => m.data), ['before', 'after']);
    assert.equal(log.count('disconnected'), 0);
  });

  test('a SIGTERM drain (close 1001) sends the client at once to the next URL, where its subscription resumes', async (t) => {
    const [a, b] = await Promise.all([Gateway.start(), Gateway.start()]);
    t.after(() => Promise.all([a.kill(), b.kill()]));
    const { c, log } = newClient(t, [a.url, b.url]);
    subscribe(c, log, 'news');
    c.connect();
    await log.waitFor((l) => l.count('news.subscribed') === 1, 'subscribed on the first gateway');
    assert.equal(log.all('connected')[0].url, a.url);

    const drained = a.term();
    const lost = await log.waitFor((l) => l.all('connecting').find((e) => e.code !== undefined), 'connecting after the drain');
    assert.deepEqual(lost, { code: 1001, reason: 'shutdown', delay: 0, url: b.url });
    await log.waitFor((l) => l.count('news.subscribed') === 2, 'subscribed on the second gateway');
    assert.equal(log.all('connected')[1].url, b.url);
    assert.deepEqual(await drained, { code: 0, signal: null }, 'the drained gateway exits 0');

    await b.publish('news', 'on b');
    await log.waitFor((l) => l.count('news.message') === 1, 'the message published on the second gateway');
    assert.equal(log.all('news.message')[0].data, 'on b');
  });

  test('close 4003 (POST /api/disconnect) stops the client: disconnected, and no connection attempt for longer than maxReconnectDelay', async (t) => {
    const secret = 'reconnect-4003';
    const g = await Gateway.start(['-auth-secret', secret]);
    const proxy = await Proxy.start(g.port);
    t.after(() => Promise.all([proxy.close(), g.kill()]));
    const { c, log } = newClient(t, proxy.url, {
      getToken: async () => jwt(secret, { sub: 'alice', exp: unix() + 60, channels: ['*'] }),
    });
    subscribe(c, log, 'news');
    c.connect();
    await log.waitFor((l) => l.count('news.subscribed') === 1, 'subscribed');

    await g.disconnectSub('alice');
    const ev = await log.waitFor((l) => l.all('disconnected')[0], 'disconnected');
    assert.deepEqual(ev, { code: 4003, reason: 'disconnected' });
    assert.equal(c.state, 'disconnected');
    const accepted = proxy.accepted;
    // Absence can only be waited out: twice the longest backoff delay.
    await sleep(800);
    assert.equal(proxy.accepted, accepted, 'no connection attempt after 4003');
    assert.equal(log.all('connecting').length, 1, 'no connecting event after the first');
    assert.equal(await g.metric('shardgate_upgrades_total', { result: 'ok' }), 1);
  });
});
