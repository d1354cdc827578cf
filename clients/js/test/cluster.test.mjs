// Close 4010 (insufficient state) needs a cluster: NATS with JetStream
// and two gateway nodes with history. A node whose NATS link was down
// while more messages were published than a channel keeps cannot vouch
// for the channel any more and closes its subscribers with 4010.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { Gateway, NATS_BIN, Proxy, newClient, poll, startNATS, subscribe } from './helpers.mjs';

// Without the NATS server this test skips on a developer's machine and
// fails under CI (build it: go build -o bin/nats-server github.com/nats-io/nats-server/v2).
const missing = !existsSync(NATS_BIN) && !process.env.CI ? `no NATS server at ${NATS_BIN} (SHARDGATE_NATS_BIN)` : false;

test('close 4010 sends the client at once to the next URL, where it resubscribes asking to recover (recovered:false: the messages were evicted)', { skip: missing }, async (t) => {
  const nats = await startNATS();
  const link = await Proxy.start(nats.port); // node B's link to NATS, to cut
  const history = ['-history-size', '5', '-recover-max', '5'];
  const a = await Gateway.start(['-broker', nats.url, ...history]);
  const b = await Gateway.start(['-broker', `nats://127.0.0.1:${link.port}`, ...history]);
  t.after(async () => {
    await Promise.all([a.kill(), b.kill(), link.close()]);
    await nats.stop();
  });

  const { c, log } = newClient(t, [b.url, a.url]);
  subscribe(c, log, 'busy');
  c.connect();
  const first = await log.waitFor((l) => l.all('busy.subscribed')[0], 'subscribed on node B');
  await a.publish('busy', 0);
  await log.waitFor((l) => l.count('busy.message') === 1, 'message 0 through NATS');

  link.down();
  await poll(async () => (await b.metric('shardgate_broker_connected')) === 0, "node B's NATS link down");
  for (let i = 1; i <= 20; i++) await a.publish('busy', i);
  link.up();

  const closed = await log.waitFor((l) => l.all('connecting').find((e) => e.code !== undefined), 'the close', 30000);
  assert.deepEqual(closed, { code: 4010, reason: 'insufficient state', delay: 0, url: a.url });
  const again = await log.waitFor((l) => l.all('busy.subscribed')[1], 'resubscribed on node A');
  assert.equal(log.all('connected')[1].url, a.url);
  assert.equal(again.epoch, first.epoch, 'one stream, one epoch on every node');
  assert.equal(again.recovered, false, 'the missed messages were evicted (history 5, 20 published)');
  await a.publish('busy', 'after');
  await log.waitFor((l) => l.count('busy.message') === 2, 'the message after');
  assert.deepEqual(log.all('busy.message').map((m) => m.data), [0, 'after']);
});
