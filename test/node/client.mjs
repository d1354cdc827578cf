// client.mjs drives one real Node.js WebSocket client (the `ws` package)
// through the gateway's client protocol, the way a backend-for-frontend or a
// Node service would use shardgate:
//
//  1. connect to WS_URL and subscribe to "node-test";
//  2. POST a message to ADMIN_URL/api/publish and wait for it to arrive;
//  3. publish over the WebSocket (id "n1"), wait for the `published` ack and
//     for the message itself (the sender is subscribed, so it gets a copy);
//  4. close with 1000 and wait for the close handshake to finish.
//
// It prints one JSON line, {"ok":true,...} on success (exit 0) or
// {"ok":false,"error":...} on failure (exit 1). test/clients runs it.
import WebSocket from 'ws';

const CHANNEL = 'node-test';
const OVERALL_TIMEOUT_MS = 20_000;

const wsURL = process.env.WS_URL;
const adminURL = process.env.ADMIN_URL;

const result = { ok: false, steps: [] };

function finish(ok, error) {
  result.ok = ok;
  if (error) result.error = String(error && error.stack ? error.message : error);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(ok ? 0 : 1);
}

if (!wsURL || !adminURL) {
  finish(false, 'WS_URL and ADMIN_URL must be set');
}

const overall = setTimeout(() => {
  finish(false, `timed out after ${OVERALL_TIMEOUT_MS} ms; steps done: ${result.steps.join(', ') || 'none'}`);
}, OVERALL_TIMEOUT_MS);

// Every message from the gateway goes through one queue, so a step waits
// for "the next message matching X" without racing the event loop, and an
// unexpected message (an error frame, say) fails the run with its content.
const inbox = [];
let waiter = null;

function step(name) {
  result.steps.push(name);
}

function nextMessage(what, match) {
  return new Promise((resolve, reject) => {
    const tryTake = () => {
      while (inbox.length > 0) {
        const m = inbox.shift();
        if (m.type === 'error') {
          reject(new Error(`gateway error while waiting for ${what}: ${JSON.stringify(m)}`));
          return true;
        }
        if (match(m)) {
          resolve(m);
          return true;
        }
        reject(new Error(`unexpected message while waiting for ${what}: ${JSON.stringify(m)}`));
        return true;
      }
      return false;
    };
    if (!tryTake()) {
      waiter = () => {
        if (tryTake()) waiter = null;
      };
    }
  });
}

function sameJSON(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function main() {
  const ws = new WebSocket(wsURL);
  const closed = new Promise((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  ws.on('message', (raw, isBinary) => {
    if (isBinary) {
      inbox.push({ type: '<binary frame>' });
    } else {
      try {
        inbox.push(JSON.parse(raw.toString()));
      } catch (err) {
        inbox.push({ type: '<invalid json>', raw: raw.toString() });
      }
    }
    if (waiter) waiter();
  });
  const failed = new Promise((_, reject) => {
    ws.on('error', (err) => reject(new Error(`websocket error: ${err.message}`)));
    ws.on('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
  });
  failed.catch(() => {}); // reported through race; never an unhandled rejection
  const race = (p) => Promise.race([p, failed]);

  await race(new Promise((resolve) => ws.once('open', resolve)));
  step('open');

  ws.send(JSON.stringify({ type: 'subscribe', channel: CHANNEL, id: 's1' }));
  const sub = await race(nextMessage('subscribed', (m) => m.type === 'subscribed'));
  if (sub.channel !== CHANNEL || sub.id !== 's1') {
    throw new Error(`bad subscribed ack: ${JSON.stringify(sub)}`);
  }
  step('subscribed');

  const adminData = { from: 'admin' };
  const resp = await fetch(new URL('/api/publish', adminURL), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel: CHANNEL, data: adminData }),
  });
  const body = await resp.text();
  if (resp.status !== 200) {
    throw new Error(`admin publish: HTTP ${resp.status} ${body}`);
  }
  step('api_published');

  const fromAPI = await race(nextMessage('message from the admin API', (m) => m.type === 'message'));
  if (fromAPI.channel !== CHANNEL || !sameJSON(fromAPI.data, adminData)) {
    throw new Error(`bad message from the admin API: ${JSON.stringify(fromAPI)}`);
  }
  result.api_message = fromAPI;
  step('api_message');

  const nodeData = { from: 'node' };
  ws.send(JSON.stringify({ type: 'publish', channel: CHANNEL, data: nodeData, id: 'n1' }));
  // The ack and the copy of the message may come in either order: the ack
  // is written by the connection's shard, the message by the broadcast.
  let ack = null;
  let own = null;
  while (ack === null || own === null) {
    const m = await race(nextMessage('published ack and own message',
      (m) => m.type === 'published' || m.type === 'message'));
    if (m.type === 'published') {
      if (ack !== null || m.id !== 'n1' || m.channel !== CHANNEL) {
        throw new Error(`bad published ack: ${JSON.stringify(m)}`);
      }
      ack = m;
    } else {
      if (own !== null || m.channel !== CHANNEL || !sameJSON(m.data, nodeData)) {
        throw new Error(`bad own message: ${JSON.stringify(m)}`);
      }
      own = m;
    }
  }
  result.published = ack;
  result.own_message = own;
  step('published');

  ws.close(1000, 'done');
  const close = await race(closed);
  result.close = close;
  if (close.code !== 1000) {
    throw new Error(`close code ${close.code} (${close.reason}), want 1000`);
  }
  step('closed');
}

main().then(
  () => {
    clearTimeout(overall);
    finish(true);
  },
  (err) => {
    clearTimeout(overall);
    finish(false, err);
  },
);
