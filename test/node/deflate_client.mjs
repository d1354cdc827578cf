// deflate_client.mjs: Node's `ws` package with perMessageDeflate negotiates
// permessage-deflate with the gateway and checks that compressed traffic
// decodes both ways, and that the broadcast really was smaller on the wire:
//
//  1. connect to WS_URL offering permessage-deflate and subscribe to CHANNEL;
//  2. print "subscribed"; the test then publishes BIG (above
//     -compression-min-bytes) and SMALL through the admin API; both must
//     arrive intact, and the socket's bytesRead while BIG arrived is
//     reported (compressed, it is far less than BIG's JSON);
//  3. publish a message above ws's own compression threshold (ws compresses
//     it) and wait for the `published` ack and the own copy: the gateway
//     inflated it.
//
// It prints one JSON line, {"ok":true,...} or {"ok":false,"error":...}.
// test/clients/compression_clients_test.go runs it.
import WebSocket from 'ws';

const TIMEOUT_MS = 20_000;
const { WS_URL: url, CHANNEL: channel, BIG, SMALL } = process.env;
const big = JSON.parse(BIG);
const small = JSON.parse(SMALL);
const own = { from: 'node', text: 'compressed '.repeat(300) };
const result = { ok: false, steps: [] };

function finish(ok, error) {
  result.ok = ok;
  if (error) result.error = String(error && error.message ? error.message : error);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(ok ? 0 : 1);
}
setTimeout(() => finish(false, `timed out; steps: ${result.steps.join(' ')}`), TIMEOUT_MS).unref();

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// One queue of parsed messages; next() takes the oldest.
const inbox = [];
let waiter = null;
function next() {
  return new Promise((resolve) => {
    if (inbox.length) return resolve(inbox.shift());
    waiter = () => resolve(inbox.shift());
  });
}

async function run() {
  // threshold: ws compresses only messages at least this long (default 1024).
  const ws = new WebSocket(url, { perMessageDeflate: { threshold: 1024 } });
  ws.on('message', (data) => {
    inbox.push(JSON.parse(data.toString()));
    if (waiter) {
      const w = waiter;
      waiter = null;
      w();
    }
  });
  // ws.extensions names the extensions only; the parameters are in the answer.
  ws.once('upgrade', (res) => {
    result.extensions = res.headers['sec-websocket-extensions'] || '';
  });
  ws.on('error', (err) => finish(false, err));
  ws.on('close', (code) => {
    if (!result.steps.includes('published')) finish(false, `closed early with ${code}`);
  });
  await new Promise((resolve) => ws.once('open', resolve));
  if (ws.extensions !== 'permessage-deflate') throw new Error(`not negotiated: ${JSON.stringify(ws.extensions)}, answer ${JSON.stringify(result.extensions)}`);
  result.steps.push('negotiated');

  ws.send(JSON.stringify({ type: 'subscribe', channel, id: 1 }));
  const sub = await next();
  if (sub.type !== 'subscribed' || sub.id !== 1) throw new Error(`subscribe reply ${JSON.stringify(sub)}`);
  result.steps.push('subscribed');
  const before = ws._socket.bytesRead;
  process.stdout.write('subscribed\n');

  const m1 = await next();
  result.big_wire_bytes = ws._socket.bytesRead - before;
  if (m1.type !== 'message' || m1.channel !== channel || !same(m1.data, big)) throw new Error(`big message ${JSON.stringify(m1).slice(0, 200)}`);
  const m2 = await next();
  if (m2.type !== 'message' || !same(m2.data, small)) throw new Error(`small message ${JSON.stringify(m2).slice(0, 200)}`);
  result.steps.push('received');

  ws.send(JSON.stringify({ type: 'publish', channel, data: own, id: 'node' }));
  let acked = false;
  let echoed = false;
  while (!(acked && echoed)) {
    const m = await next();
    if (m.type === 'published' && m.id === 'node') acked = true;
    else if (m.type === 'message' && same(m.data, own)) echoed = true;
    else throw new Error(`while waiting for the ack and own message: ${JSON.stringify(m).slice(0, 200)}`);
  }
  result.steps.push('published');
  ws.close(1000);
  await new Promise((resolve) => ws.once('close', resolve));
  finish(true);
}
run().catch((err) => finish(false, err));
