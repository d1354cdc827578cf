// Tokens (clients/README.md, "Tokens"): refresh in place before exp, a
// fresh token after 4001, getToken failures and "no token".
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { Gateway, Log, jwt, newClient, subscribe, unix } from './helpers.mjs';

const secret = 'token-test-secret';

describe('tokens', { concurrency: true }, () => {
  let g;
  // One gateway for every test of the file: each uses its own sub and channels.
  test.before(async () => {
    g = await Gateway.start(['-auth-secret', secret]);
  });
  test.after(() => g.kill());

  test('a token that expires every 2 s is refreshed in place for 20 s: no 4001, no reconnect, messages keep flowing', async (t) => {
    // Its own gateway: the 4001 test below expires a connection on the shared one.
    const g = await Gateway.start(['-auth-secret', secret]);
    t.after(() => g.kill());
    const { c, log } = newClient(t, g.url, {
      getToken: async () => {
        log.add('token', null);
        // exp is whole seconds: rounding keeps the lifetime within 2 s ± 0.5 s.
        return jwt(secret, { sub: 'refresher', exp: Math.round(Date.now() / 1000) + 2, channels: ['refresh.*'] });
      },
    });
    subscribe(c, log, 'refresh.tick');
    c.connect();
    await log.waitFor((l) => l.count('refresh.tick.subscribed') === 1, 'subscribed');

    const until = performance.now() + 20000;
    let n = 0;
    while (performance.now() < until) {
      await g.publish('refresh.tick', ++n);
      await log.waitFor((l) => l.count('refresh.tick.message') === n, `message ${n}`, 3000);
      await sleep(100); // pacing, ten messages a second
    }

    assert.deepEqual(log.all('error'), []);
    assert.equal(log.count('connecting'), 1, 'connecting only for connect()');
    assert.equal(log.count('connected'), 1, 'never reconnected');
    assert.equal(log.count('refresh.tick.subscribed'), 1);
    assert.deepEqual(log.all('refresh.tick.message').map((m) => m.data), Array.from({ length: n }, (_, i) => i + 1));
    assert.ok(log.count('token') >= 12, `only ${log.count('token')} tokens in 20 s of 2 s tokens`);
    assert.equal(await g.metric('shardgate_disconnects_total', { reason: 'token_expired' }), 0, 'no 4001');
  });

  test('with a static token only, 4001 stops the client (disconnected 4001) instead of looping on refused upgrades', async (t) => {
    const token = jwt(secret, { sub: 'static', exp: unix() + 2, channels: ['static.*'] });
    const { c, log } = newClient(t, g.url, { token, minReconnectDelay: 20, maxReconnectDelay: 50 });
    subscribe(c, log, 'static.news');
    c.connect();
    await log.waitFor((l) => l.count('static.news.subscribed') === 1, 'subscribed');
    const stopped = await log.waitFor((l) => l.all('disconnected')[0], 'disconnected', 10000);
    assert.deepEqual(stopped, { code: 4001, reason: 'token expired' });
    assert.equal(c.state, 'disconnected');
    assert.equal(log.count('connecting'), 1, 'no attempt after the 4001');
  });

  test('after 4001 (every refresh refused with bad_token) the client reconnects at once with a fresh token and resubscribes', async (t) => {
    let calls = 0;
    // Each token names another sub, so every refresh is refused
    // (bad_token: the sub must stay) and the connection expires.
    const { c, log } = newClient(t, g.url, {
      getToken: async () => {
        log.add('token', ++calls);
        return jwt(secret, { sub: `rotating-${calls}`, exp: unix() + 2, channels: ['expiry.*'] });
      },
    });
    subscribe(c, log, 'expiry.news');
    c.connect();
    await log.waitFor((l) => l.count('expiry.news.subscribed') === 1, 'subscribed');
    const closed = await log.waitFor((l) => l.all('connecting').find((e) => e.code === 4001), 'the close 4001', 10000);
    assert.deepEqual(closed, { code: 4001, reason: 'token expired', delay: 0, url: g.url });
    assert.ok(log.all('error').some((e) => e.code === 'bad_token'), 'the refused refresh is reported as bad_token');
    await log.waitFor((l) => l.all('connected').length >= 2 && l.all('expiry.news.subscribed').length >= 2, 'resubscribed');

    const kinds = log.entries.map((e) => e.kind);
    const closedAt = log.entries.findIndex((e) => e.kind === 'connecting' && e.value.code === 4001);
    const reconnectedAt = kinds.indexOf('connected', closedAt);
    assert.ok(kinds.slice(closedAt, reconnectedAt).includes('token'), 'a fresh token between 4001 and the reconnect');
    await g.publish('expiry.news', 'after');
    await log.waitFor((l) => l.count('expiry.news.message') === 1, 'a message on the new connection');
  });

  test('a refreshed token that no longer allows a channel ends its subscription (unsubscribed, reason forbidden); subscribing again is refused with forbidden', async (t) => {
    // Tokens allow narrow.news until it is subscribed, then no longer.
    let subscribed = false;
    const { c, log } = newClient(t, g.url, {
      getToken: async () =>
        jwt(secret, { sub: 'narrowed', exp: unix() + 3, channels: subscribed ? ['narrow.other'] : ['narrow.*'] }),
    });
    c.subscribe('narrow.news', {
      subscribed: () => (subscribed = true),
      unsubscribed: (info) => log.add('narrow.news.unsubscribed', info),
    });
    c.connect();
    const ended = await log.waitFor((l) => l.all('narrow.news.unsubscribed')[0], 'unsubscribed by the gateway', 10000);
    assert.deepEqual(ended, { reason: 'forbidden' });

    subscribe(c, log, 'narrow.news');
    const code = await log.waitFor((l) => l.all('narrow.news.error')[0], 'the subscribe refused');
    assert.equal(code, 'forbidden');
    assert.equal(log.count('connecting'), 1, 'still the same connection');
    // The subscription ended for good: another subscribe is allowed.
    assert.doesNotThrow(() => c.subscribe('narrow.news', {}).unsubscribe());
  });

  test('a token valid for 40 days (a refresh delay past the 24.8-day limit of timers) is not refreshed at once', async (t) => {
    const { c, log } = newClient(t, g.url, {
      getToken: async () => {
        log.add('token', null);
        return jwt(secret, { sub: 'longlived', exp: unix() + 40 * 86400, channels: ['long'] });
      },
    });
    subscribe(c, log, 'long');
    c.connect();
    await log.waitFor((l) => l.count('long.subscribed') === 1, 'subscribed');
    // An overflowing timer fires at once, and then again after every
    // refreshed: a loop that 200 ms would show many times over.
    await sleep(200);
    assert.equal(log.count('token'), 1, 'one token, no refresh');
    assert.deepEqual(log.all('error'), []);
  });

  test('a failing getToken is reported (error, code token) and retried after the backoff delay', async (t) => {
    let calls = 0;
    const { c, log } = newClient(t, g.url, {
      getToken: async () => {
        if (++calls === 1) throw new Error('issuer down');
        return jwt(secret, { sub: 'retrier', exp: unix() + 60, channels: ['*'] });
      },
    });
    c.connect();
    await log.waitFor((l) => l.count('connected') === 1, 'connected');
    const [err] = log.all('error');
    assert.equal(err.code, 'token');
    assert.equal(err.cause.message, 'issuer down');
    const { delay } = log.all('connecting')[1];
    assert.ok(delay >= 50 && delay <= 100, `retried after ${delay} ms, want the first backoff window [50, 100]`);
  });

  test('getToken resolving to null stops the client: disconnected (1000, "no token"), at connect and at refresh', async (t) => {
    const { c, log } = newClient(t, g.url, { getToken: async () => null });
    c.connect();
    assert.deepEqual(await log.waitFor((l) => l.all('disconnected')[0], 'disconnected'), { code: 1000, reason: 'no token' });
    assert.equal(c.state, 'disconnected');

    const log2 = new Log();
    const { c: c2 } = newClient(t, g.url, {
      getToken: async () => (log2.count('connected') === 0 ? jwt(secret, { sub: 'quitter', exp: unix() + 3 }) : null),
    }, log2);
    c2.connect();
    await log2.waitFor((l) => l.count('connected') === 1, 'connected');
    assert.deepEqual(await log2.waitFor((l) => l.all('disconnected')[0], 'disconnected at refresh', 5000), {
      code: 1000,
      reason: 'no token',
    });
    assert.equal(log2.count('connecting'), 1, 'no reconnect');
  });

  test('without a token the upgrade is refused (401), and the client keeps retrying with backoff and a fresh getToken each time', async (t) => {
    let calls = 0;
    const { c, log } = newClient(t, g.url, {
      getToken: async () => (++calls < 3 ? 'not-a-jwt' : jwt(secret, { sub: 'late', exp: unix() + 60 })),
    });
    c.connect();
    await log.waitFor((l) => l.count('connected') === 1, 'connected with the third token');
    assert.equal(calls, 3);
    assert.deepEqual(log.all('connecting').map((e) => e.delay > 0), [false, true, true]);
  });
});
