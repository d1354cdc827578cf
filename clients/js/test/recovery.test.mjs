// Recovery (clients/README.md, "Subscriptions and recovery"): resubscribe
// with recover {epoch, offset} after every reconnect, each message handed
// over once and in order, recovered:false reported.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { Gateway, Proxy, newClient, subscribe } from './helpers.mjs';

describe('recovery', { concurrency: true }, () => {
  test('while a publisher floods 4,000 messages and the connection is cut every 200-400 ms, the app gets exactly 1..4000 in order, and every resubscribe recovered', async (t) => {
    const N = 4000;
    const g = await Gateway.start(['-history-size', '100000', '-recover-max', '100000']);
    const proxy = await Proxy.start(g.port);
    t.after(() => Promise.all([proxy.close(), g.kill()]));
    const { c, log } = newClient(t, proxy.url, { minReconnectDelay: 20, maxReconnectDelay: 200 });
    const got = [];
    c.subscribe('flood', {
      message: (data) => {
        got.push(data.n);
        if (data.n === N) log.add('last', got.length);
      },
      subscribed: (info) => log.add('subscribed', info),
    });
    c.connect();
    await log.waitFor((l) => l.count('subscribed') === 1, 'subscribed');

    let flooding = true;
    let cuts = 0;
    const cutter = (async () => {
      while (flooding) {
        await sleep(200 + Math.random() * 200);
        proxy.cut();
        cuts++;
      }
    })();
    for (let n = 1; n <= N; n++) await g.publish('flood', { n });
    flooding = false;
    await cutter;
    await log.waitFor((l) => l.count('last') > 0, `message ${N}`, 30000);

    const wrong = got.findIndex((n, i) => n !== i + 1);
    assert.equal(wrong, -1, `message #${wrong + 1} is ${got[wrong]} (got ${got.length})`);
    assert.equal(got.length, N);
    const resubscribes = log.all('subscribed').slice(1);
    assert.ok(resubscribes.length >= 5, `only ${resubscribes.length} reconnects (${cuts} cuts)`);
    assert.deepEqual(
      resubscribes.filter((s) => s.recovered !== true),
      [],
      'every resubscribe recovered',
    );
    t.diagnostic(`${cuts} cuts, ${resubscribes.length} recovering resubscribes`);
  });

  test('recovered:false reaches the app when the gateway no longer holds the missed messages, and only newer messages follow', async (t) => {
    const g = await Gateway.start(['-history-size', '5']);
    const proxy = await Proxy.start(g.port);
    t.after(() => Promise.all([proxy.close(), g.kill()]));
    const { c, log } = newClient(t, proxy.url);
    subscribe(c, log, 'news');
    c.connect();
    const first = await log.waitFor((l) => l.all('news.subscribed')[0], 'subscribed');
    await g.publish('news', 0);
    await log.waitFor((l) => l.count('news.message') === 1, 'message 0');

    proxy.down();
    await log.waitFor((l) => l.all('connecting').some((e) => e.code === 1006), 'the connection lost');
    for (let i = 1; i <= 20; i++) await g.publish('news', i);
    proxy.up();
    const again = await log.waitFor((l) => l.all('news.subscribed')[1], 'resubscribed');
    assert.equal(again.recovered, false);
    assert.equal(again.epoch, first.epoch, 'same gateway, same epoch');
    await g.publish('news', 'new');
    await log.waitFor((l) => l.count('news.message') === 2, 'the newer message');
    assert.deepEqual(log.all('news.message').map((m) => m.data), [0, 'new']);
  });

  test('a connection lost while no message was missed resubscribes with recovered:true and nothing is handed over twice', async (t) => {
    const g = await Gateway.start(['-history-size', '100']);
    const proxy = await Proxy.start(g.port);
    t.after(() => Promise.all([proxy.close(), g.kill()]));
    const { c, log } = newClient(t, proxy.url);
    subscribe(c, log, 'news');
    c.connect();
    await log.waitFor((l) => l.count('news.subscribed') === 1, 'subscribed');
    for (let i = 1; i <= 3; i++) await g.publish('news', i);
    await log.waitFor((l) => l.count('news.message') === 3, '3 messages');
    proxy.cut();
    const again = await log.waitFor((l) => l.all('news.subscribed')[1], 'resubscribed');
    assert.equal(again.recovered, true);
    await g.publish('news', 4);
    await log.waitFor((l) => l.count('news.message') === 4, 'message 4');
    const msgs = log.all('news.message');
    assert.deepEqual(msgs.map((m) => m.data), [1, 2, 3, 4]);
    assert.ok(msgs.every((m, i) => i === 0 || m.offset > msgs[i - 1].offset), 'offsets grow');
  });
});
