// Backoff (clients/README.md, "Reconnecting"): with every gateway down,
// the delays the client announces and the real time between its attempts,
// observed on loopback servers that count the attempts and drop them.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { Log, newClient } from './helpers.mjs';

/** downServer accepts and at once destroys every connection, logging an `attempt` with its name. */
async function downServer(t, log, name) {
  const srv = net.createServer((s) => {
    log.add('attempt', name);
    s.destroy();
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.after(() => srv.close());
  return `ws://127.0.0.1:${srv.address().port}/ws`;
}

test('with the gateways down, each delay is within [min, min(max, min·2ⁿ⁺¹)], they grow and spread, the attempts follow them and go round the URLs', async (t) => {
  const min = 100;
  const max = 1600;
  const attempts = 12;
  const log = new Log();
  const urls = [await downServer(t, log, 'a'), await downServer(t, log, 'b')];
  const { c } = newClient(t, urls, { minReconnectDelay: min, maxReconnectDelay: max }, log);
  c.connect();
  await log.waitFor((l) => l.count('attempt') >= attempts, `${attempts} attempts`, 30000);
  c.disconnect();

  const connecting = log.entries.filter((e) => e.kind === 'connecting');
  const tries = log.entries.filter((e) => e.kind === 'attempt');
  assert.equal(connecting[0].value.delay, 0, 'connect() tries at once');
  assert.equal(connecting[0].value.url, urls[0]);
  const delays = [];
  const late = [];
  for (let n = 0; n < attempts - 1; n++) {
    const ev = connecting[n + 1];
    const { delay, url, code } = ev.value;
    const top = Math.min(max, min * 2 ** (n + 1));
    assert.ok(delay >= min && delay <= top, `delay ${n}: ${delay} not in [${min}, ${top}]`);
    assert.equal(code, 1006, 'a dropped attempt closes with 1006');
    assert.equal(url, urls[(n + 1) % 2], 'each failed attempt moves to the next URL');
    assert.equal(tries[n + 1].value, (n + 1) % 2 ? 'b' : 'a', 'the attempt went to that URL');
    // The attempt comes `delay` ms after it was announced, plus a TCP
    // connect on loopback. Node.js times a timer from the event loop's
    // cached clock, which can lag the real one by the length of the loop
    // turn that set it: a few ms of slack the other way under load.
    const waited = tries[n + 1].at - ev.at;
    assert.ok(waited >= delay - 25 && waited <= delay + 1000, `attempt ${n + 1} came ${waited.toFixed(0)} ms after a delay of ${delay.toFixed(0)} ms`);
    delays.push(delay);
    late.push(waited - delay);
  }
  late.sort((x, y) => x - y);
  assert.ok(late[late.length >> 1] < 100, `attempts late by ${late.map((x) => x.toFixed(0)).join(', ')} ms`);
  assert.ok(new Set(delays).size > 1, 'jittered delays are not all equal');
  const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(mean(delays.slice(-5)) > mean(delays.slice(0, 4)), `delays grow: ${delays.map((d) => d.toFixed(0)).join(', ')}`);
  assert.ok(Math.max(...delays) > 2 * min, 'the window widens past 2·min');
});
