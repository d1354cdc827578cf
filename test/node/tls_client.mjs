// tls_client.mjs drives Node's `ws` package over wss:// against a gateway
// serving a certificate from a test CA, trusting that CA only (not
// NODE_TLS_REJECT_UNAUTHORIZED, not rejectUnauthorized: false):
//
//  1. connect to WSS_URL with `ca` read from CA_FILE, offering ALPN
//     http/1.1, and record what the TLS socket negotiated;
//  2. subscribe to "node-tls";
//  3. POST a message to ADMIN_URL/api/publish and wait for it;
//  4. publish over the WebSocket (id "t1"), wait for the ack and the copy;
//  5. ping with a payload and wait for the pong;
//  6. close with 1000 and wait for the close handshake to finish.
//
// It prints one JSON line, {"ok":true,...} (exit 0) or {"ok":false,
// "error":...} (exit 1). test/clients (tls_clients_test.go) runs it.
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

const CHANNEL = 'node-tls';
const OVERALL_TIMEOUT_MS = 20_000;

const wssURL = process.env.WSS_URL;
const adminURL = process.env.ADMIN_URL;
const caFile = process.env.CA_FILE;

const result = { ok: false, steps: [] };

function finish(ok, error) {
  result.ok = ok;
  if (error) result.error = String(error && error.stack ? error.message : error);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(ok ? 0 : 1);
}

if (!wssURL || !adminURL || !caFile) {
  finish(false, 'WSS_URL, ADMIN_URL and CA_FILE must be set');
}

const overall = setTimeout(() => {
  finish(false, `timed out after ${OVERALL_TIMEOUT_MS} ms; steps done: ${result.steps.join(', ') || 'none'}`);
}, OVERALL_TIMEOUT_MS);

// One queue of everything the gateway sends; a step takes the next one.
const inbox = [];
let waiter = null;

function deliver(m) {
  inbox.push(m);
  if (waiter) {
    const w = waiter;
    waiter = null;
    w();
  }
}

function next(what) {
  return new Promise((resolve) => {
    if (inbox.length > 0) {
      resolve(inbox.shift());
      return;
    }
    waiter = () => resolve(inbox.shift());
  }).then((m) => {
    if (m.type === 'error') throw new Error(`gateway error while waiting for ${what}: ${JSON.stringify(m)}`);
    return m;
  });
}

function sameJSON(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function main() {
  const ws = new WebSocket(wssURL, { ca: readFileSync(caFile), ALPNProtocols: ['http/1.1'] });
  const closed = new Promise((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  ws.on('upgrade', (res) => {
    const s = res.socket;
    const peer = s.getPeerCertificate();
    result.tls = {
      protocol: s.getProtocol(),
      alpn: s.alpnProtocol || '',
      authorized: s.authorized,
      serial: peer && peer.serialNumber ? peer.serialNumber : '',
    };
  });
  ws.on('message', (raw, isBinary) => {
    if (isBinary) {
      deliver({ type: '<binary frame>' });
      return;
    }
    try {
      deliver(JSON.parse(raw.toString()));
    } catch (err) {
      deliver({ type: '<invalid json>', raw: raw.toString() });
    }
  });
  ws.on('pong', (data) => deliver({ type: '<pong>', data: data.toString() }));
  const failed = new Promise((_, reject) => {
    ws.on('error', (err) => reject(new Error(`websocket error: ${err.message}`)));
    ws.on('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
  });
  failed.catch(() => {});
  const race = (p) => Promise.race([p, failed]);

  await race(new Promise((resolve) => ws.once('open', resolve)));
  result.steps.push('open');

  ws.send(JSON.stringify({ type: 'subscribe', channel: CHANNEL, id: 's1' }));
  const sub = await race(next('subscribed'));
  if (sub.type !== 'subscribed' || sub.channel !== CHANNEL || sub.id !== 's1') {
    throw new Error(`bad subscribed ack: ${JSON.stringify(sub)}`);
  }
  result.steps.push('subscribed');

  const adminData = { from: 'admin' };
  const resp = await fetch(new URL('/api/publish', adminURL), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel: CHANNEL, data: adminData }),
  });
  const body = await resp.text();
  if (resp.status !== 200) throw new Error(`admin publish: HTTP ${resp.status} ${body}`);
  const fromAPI = await race(next('message from the admin API'));
  if (fromAPI.type !== 'message' || fromAPI.channel !== CHANNEL || !sameJSON(fromAPI.data, adminData)) {
    throw new Error(`bad message from the admin API: ${JSON.stringify(fromAPI)}`);
  }
  result.api_message = fromAPI;
  result.steps.push('api_message');

  const nodeData = { from: 'node-tls' };
  ws.send(JSON.stringify({ type: 'publish', channel: CHANNEL, data: nodeData, id: 't1' }));
  let ack = null;
  let own = null;
  while (ack === null || own === null) {
    const m = await race(next('published ack and own message'));
    if (m.type === 'published' && ack === null && m.id === 't1' && m.channel === CHANNEL) {
      ack = m;
    } else if (m.type === 'message' && own === null && m.channel === CHANNEL && sameJSON(m.data, nodeData)) {
      own = m;
    } else {
      throw new Error(`unexpected message while waiting for the ack and own copy: ${JSON.stringify(m)}`);
    }
  }
  result.published = ack;
  result.own_message = own;
  result.steps.push('published');

  ws.ping('node-tls-ping');
  const pong = await race(next('pong'));
  if (pong.type !== '<pong>' || pong.data !== 'node-tls-ping') {
    throw new Error(`expected the pong to node-tls-ping, got ${JSON.stringify(pong)}`);
  }
  result.steps.push('pong');

  ws.close(1000, 'done');
  const close = await race(closed);
  result.close = close;
  if (close.code !== 1000) throw new Error(`close code ${close.code} (${close.reason}), want 1000`);
  result.steps.push('closed');
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
