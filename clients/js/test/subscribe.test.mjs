// Subscriptions and messages to everyone (clients/README.md,
// "Subscriptions and recovery").
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Gateway, jwt, newClient, subscribe, unix } from './helpers.mjs';

const secret = 'subscribe-test-secret';

describe('subscribe', { concurrency: true }, () => {
  let g;
  test.before(async () => {
    g = await Gateway.start(['-auth-secret', secret, '-history-size', '100']);
  });
  test.after(() => g.kill());

  const token = (sub, channels) => async () => jwt(secret, { sub, exp: unix() + 60, channels, publish: ['*'] });

  test('unsubscribe ends the subscription: no handler of it is called afterwards and its messages stop', async (t) => {
    const { c, log } = newClient(t, g.url, { getToken: token('leaver', ['*']) });
    const sub = subscribe(c, log, 'leave.a');
    subscribe(c, log, 'leave.b');
    c.connect();
    await log.waitFor((l) => l.count('leave.a.subscribed') === 1 && l.count('leave.b.subscribed') === 1, 'subscribed');
    await g.publish('leave.a', 1);
    await log.waitFor((l) => l.count('leave.a.message') === 1, 'a message before');

    assert.equal(sub.channel, 'leave.a');
    sub.unsubscribe();
    sub.unsubscribe();
    assert.deepEqual(log.all('leave.a.unsubscribed'), []);
    // The gateway handles one connection's requests in order: once this
    // publish is answered, the unsubscribe sent before it is in force.
    await c.publish('leave.a', 2);
    await c.publish('leave.b', 'barrier');
    await log.waitFor((l) => l.count('leave.b.message') === 1, 'the barrier message');
    assert.deepEqual(log.all('leave.a.message').map((m) => m.data), [1]);

    // The channel can be subscribed again, and the unsubscribe's late
    // reply is not taken for an end of the new subscription.
    subscribe(c, log, 'leave.a');
    await log.waitFor((l) => l.count('leave.a.subscribed') === 2, 'subscribed again');
    await g.publish('leave.a', 3);
    await log.waitFor((l) => l.count('leave.a.message') === 2, 'a message after subscribing again');
    assert.deepEqual(log.all('leave.a.unsubscribed'), []);
  });

  test('a message to every connection (no channel) is a message event', async (t) => {
    const { c, log } = newClient(t, g.url, { getToken: token('listener', []) });
    c.connect();
    await log.waitFor((l) => l.count('connected') === 1, 'connected');
    await g.broadcast({ notice: 'maintenance' });
    const data = await log.waitFor((l) => l.all('message')[0], 'the message to everyone');
    assert.deepEqual(data, { notice: 'maintenance' });
  });

  test('subscribe errors forbidden and bad_channel end the subscription through its error handler; the others are unaffected', async (t) => {
    const { c, log } = newClient(t, g.url, { getToken: token('limited', ['ok.*']) });
    subscribe(c, log, 'secret');
    subscribe(c, log, 'bad channel!');
    subscribe(c, log, 'ok.fine');
    c.connect();
    assert.equal(await log.waitFor((l) => l.all('secret.error')[0], 'forbidden'), 'forbidden');
    assert.equal(await log.waitFor((l) => l.all('bad channel!.error')[0], 'bad_channel'), 'bad_channel');
    await log.waitFor((l) => l.count('ok.fine.subscribed') === 1, 'the allowed subscription');
    // Ended: subscribing again is allowed (and refused again).
    subscribe(c, log, 'secret');
    await log.waitFor((l) => l.count('secret.error') === 2, 'forbidden again');
    assert.equal(log.count('secret.unsubscribed'), 0);
  });

  test('subscribing twice to one channel throws already_subscribed', async (t) => {
    const { c } = newClient(t, g.url, { getToken: token('twice', ['*']) });
    c.subscribe('twice', {});
    assert.throws(() => c.subscribe('twice', {}), { name: 'ShardgateError', code: 'already_subscribed' });
  });

  test('subscribed carries epoch and offset; messages carry their offset', async (t) => {
    const { c, log } = newClient(t, g.url, { getToken: token('offsets', ['*']) });
    await g.publish('offsets', 'old');
    subscribe(c, log, 'offsets');
    c.connect();
    const info = await log.waitFor((l) => l.all('offsets.subscribed')[0], 'subscribed');
    assert.equal(typeof info.epoch, 'string');
    assert.ok(info.offset > 0, 'the channel had a message');
    const { offset } = await g.publish('offsets', 'new');
    const m = await log.waitFor((l) => l.all('offsets.message')[0], 'the message');
    assert.deepEqual(m, { data: 'new', offset });
  });
});
