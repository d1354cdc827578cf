import { backoff } from './backoff.js';
import { Emitter, safeCall } from './emitter.js';
import { ShardgateError } from './errors.js';
import type { Frame, Request } from './protocol.js';
import { Subscription } from './subscription.js';
import { tokenExpiry } from './token.js';
import type { ClientEvents, ClientOptions, State, SubscriptionHandlers, WebSocketConstructor, WebSocketLike } from './types.js';

/** A pending request's continuation: the reply, or undefined when the connection was lost first. */
type Pending = (reply: Frame | undefined) => void;

const noop = () => {};

/**
 * Client keeps one WebSocket to a shardgate gateway (any of several URLs)
 * open, resubscribes and recovers after every reconnect, and refreshes its
 * token in place. The behaviour is the one clients/README.md describes;
 * clients/js/README.md shows how to use it.
 *
 * Every timer the client starts belongs to the current attempt or
 * connection and is cleared when that ends; after disconnect() nothing of
 * the client keeps a Node.js process alive.
 */
export class Client extends Emitter<ClientEvents> {
  private readonly urls: string[];
  private readonly WS: WebSocketConstructor;
  private readonly getToken?: () => Promise<string | null>;
  private readonly min: number;
  private readonly max: number;
  private readonly publishTimeout: number;

  private current: State = 'disconnected';
  /** Bumped by every stop: an attempt started before it (awaiting getToken) gives up. */
  private gen = 0;
  /** Index of the URL of the next attempt (modulo urls.length). */
  private next = 0;
  /** Consecutive failed attempts since a connection last opened: the backoff's n. */
  private failures = 0;
  /** The scheduled attempt. */
  private timer?: ReturnType<typeof setTimeout>;
  private ws?: WebSocketLike;
  private url = '';

  private token?: string;
  /** The token's `exp` (Unix seconds), when it has one. */
  private exp?: number;
  /** When the token was obtained (ms): its lifetime, for the refresh margin, runs from here. */
  private tokenAt = 0;
  /** The cached token must not be used again (401 possible, or 4001). */
  private stale = false;
  private refreshTimer?: ReturnType<typeof setTimeout>;
  private refreshFailures = 0;

  private seq = 0;
  private pending = new Map<number | string, Pending>();
  private readonly subs = new Map<string, Subscription>();

  constructor(urls: string | string[], opts: ClientOptions = {}) {
    super();
    this.urls = typeof urls == 'string' ? [urls] : urls.slice();
    const WS = opts.WebSocket || (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!this.urls.length) throw new TypeError('shardgate: no URL');
    if (!WS) throw new TypeError('shardgate: no WebSocket; pass options.WebSocket');
    this.WS = WS;
    this.getToken = opts.getToken;
    this.setToken(opts.token);
    this.min = opts.minReconnectDelay ?? 500;
    this.max = opts.maxReconnectDelay ?? 20000;
    this.publishTimeout = opts.publishTimeout ?? 10000;
  }

  /** The client's state: 'disconnected', 'connecting' or 'connected'. */
  get state(): State {
    return this.current;
  }

  /** connect starts connecting, unless the client is connecting or connected already. */
  connect(): void {
    if (this.current != 'disconnected') return;
    this.failures = 0;
    this.schedule(0);
  }

  /**
   * disconnect closes the connection (1000), cancels every timer and
   * pending publish (`disconnected`), and emits `disconnected`.
   * Subscriptions stay: connect() resubscribes and recovers them.
   */
  disconnect(): void {
    this.stop(1000, 'disconnect');
  }

  /**
   * subscribe registers a subscription to channel and returns it; the
   * subscribe is sent now if connected, and after every (re)connect.
   * Throws ShardgateError `already_subscribed` if the client has one.
   */
  subscribe(channel: string, handlers: SubscriptionHandlers = {}): Subscription {
    if (this.subs.has(channel)) throw new ShardgateError('already_subscribed', 'already subscribed to ' + channel);
    const sub = new Subscription(channel, handlers, (s) => this.unsubscribe(s));
    this.subs.set(channel, sub);
    if (this.current == 'connected') this.sendSubscribe(sub);
    return sub;
  }

  /**
   * publish sends data to channel and settles with the gateway's answer:
   * resolves on `published`, rejects with a ShardgateError carrying the
   * gateway's code, or `disconnected` (not connected, or the connection
   * was lost before the answer; never sent again) or `timeout`.
   */
  publish(channel: string, data: unknown): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.current != 'connected') return reject(new ShardgateError('disconnected', 'not connected'));
      const id = this.request({ type: 'publish', channel, data }, (reply) => {
        clearTimeout(timer);
        if (!reply) reject(new ShardgateError('disconnected', 'connection lost before the answer'));
        else if (reply.type == 'published') resolve();
        else reject(new ShardgateError(String(reply.code), reply.message));
      });
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ShardgateError('timeout', 'no answer in ' + this.publishTimeout + ' ms'));
      }, this.publishTimeout);
    });
  }

  // ---- connection lifecycle ----

  /** schedule moves to connecting and starts an attempt after delay ms. */
  private schedule(delay: number, code?: number, reason?: string): void {
    this.current = 'connecting';
    const gen = this.gen;
    this.timer = setTimeout(() => this.attempt(gen), delay);
    this.emit('connecting', { code, reason, delay, url: this.urls[this.next % this.urls.length] });
  }

  /** retry schedules the attempt after a failed one: backoff, next URL, fresh token. */
  private retry(code?: number, reason?: string): void {
    this.next++;
    this.stale = true;
    this.schedule(this.delay(), code, reason);
  }

  private delay(): number {
    return backoff(this.failures++, this.min, this.max);
  }

  private async attempt(gen: number): Promise<void> {
    if (this.getToken && (!this.token || this.stale || this.expiring())) {
      let token: string | null;
      try {
        token = await this.getToken();
      } catch (err) {
        if (gen != this.gen) return;
        this.emit('error', new ShardgateError('token', 'getToken failed', err));
        return this.schedule(this.delay());
      }
      if (gen != this.gen) return;
      if (token == null) return this.stop(1000, 'no token');
      this.setToken(token);
    }
    const url = this.urls[this.next % this.urls.length];
    const token = this.token;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(token ? url + (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token) : url);
    } catch (err) {
      this.emit('error', new ShardgateError('websocket', String(err), err));
      return this.retry();
    }
    this.ws = ws;
    this.url = url;
    ws.onerror = noop;
    ws.onopen = () => this.opened();
    ws.onmessage = (e) => this.receive(e.data);
    ws.onclose = (e) => this.closed(e.code, e.reason);
  }

  private opened(): void {
    this.current = 'connected';
    this.failures = 0;
    this.subs.forEach((sub) => this.sendSubscribe(sub));
    this.armRefresh();
    this.emit('connected', { url: this.url });
  }

  /** closed acts on the close of the current WebSocket (clients/README.md, "Close codes"). */
  private closed(code: number, reason: string): void {
    const wasOpen = this.current == 'connected';
    this.drop();
    if (!wasOpen) return this.retry(code, reason);
    if (code == 4003) return this.stop(code, reason);
    if (code == 1001 || code == 4010) {
      this.next++;
      return this.schedule(0, code, reason);
    }
    if (code == 4001) {
      // A static token cannot be replaced: stop rather than loop on 401s.
      if (!this.getToken) return this.stop(code, reason);
      this.stale = true;
      return this.schedule(0, code, reason);
    }
    // A node that crashed sends no close frame: the next attempt goes to
    // the next URL, as after a failed attempt.
    this.next++;
    this.schedule(this.delay(), code, reason);
  }

  /**
   * drop lets go of the current WebSocket and of everything that belongs
   * to that connection: the refresh timer, pending requests (publishes
   * fail with `disconnected`), subscribe retries; subscriptions wait for
   * the next connection.
   */
  private drop(): void {
    const ws = this.ws;
    if (ws) {
      this.ws = undefined;
      ws.onopen = ws.onmessage = ws.onclose = null;
      // onerror stays a no-op: `ws` emits an error when a socket is
      // closed before its handshake ended, and throws if none listens.
      try {
        ws.close(1000);
      } catch {}
    }
    clearTimeout(this.refreshTimer);
    const pending = this.pending;
    this.pending = new Map();
    pending.forEach((p) => p(undefined));
    this.subs.forEach((sub) => {
      sub.live = false;
      clearTimeout(sub.timer);
    });
  }

  /** stop ends everything and, unless already there, moves to disconnected. */
  private stop(code: number, reason: string): void {
    this.gen++;
    clearTimeout(this.timer);
    this.drop();
    if (this.current == 'disconnected') return;
    this.current = 'disconnected';
    this.emit('disconnected', { code, reason });
  }

  // ---- frames ----

  /** request sends frame with a new id; pending gets the reply. */
  private request(frame: Request, pending: Pending): number {
    const id = ++this.seq;
    frame.id = id;
    this.pending.set(id, pending);
    this.ws!.send(JSON.stringify(frame));
    return id;
  }

  private receive(text: string): void {
    let m: Frame | null;
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    if (!m) return;
    if (m.type == 'message') {
      if (m.channel === undefined) this.emit('message', m.data);
      else this.subs.get(m.channel)?.deliver(m);
    } else if (m.id != null) {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.(m);
    } else if (m.type == 'unsubscribed') {
      // Unasked: the gateway ended it (a refreshed token no longer allows the channel).
      const sub = this.subs.get(m.channel!);
      if (sub) {
        this.forget(sub);
        safeCall(sub.handlers.unsubscribed, { reason: m.reason });
      }
    } else if (m.type == 'error') {
      this.emit('error', new ShardgateError(String(m.code), m.message));
    }
  }

  // ---- subscriptions ----

  private sendSubscribe(sub: Subscription): void {
    this.request(sub.request(), (reply) => {
      if (!reply || this.subs.get(sub.channel) != sub) return;
      if (reply.type == 'subscribed') return sub.subscribed(reply);
      if (reply.code == 'rate_limited' || reply.code == 'unavailable') {
        // Retried on this connection; drop() cancels the retry, and the
        // next connection subscribes anyway.
        sub.timer = setTimeout(() => this.sendSubscribe(sub), backoff(sub.retries++, this.min, this.max));
        return;
      }
      this.forget(sub);
      safeCall(sub.handlers.error, new ShardgateError(String(reply.code), reply.message));
    });
  }

  private unsubscribe(sub: Subscription): void {
    if (this.subs.get(sub.channel) != sub) return;
    this.forget(sub);
    // The reply has a pending no-op, so it is never taken for an unasked
    // unsubscribed of a later subscription to the same channel.
    if (this.current == 'connected') this.request({ type: 'unsubscribe', channel: sub.channel }, noop);
  }

  private forget(sub: Subscription): void {
    this.subs.delete(sub.channel);
    clearTimeout(sub.timer);
    sub.live = false;
  }

  // ---- token ----

  private setToken(token: string | undefined): void {
    this.token = token;
    this.exp = token ? tokenExpiry(token) : undefined;
    this.tokenAt = Date.now();
    this.stale = false;
  }

  /** ms before exp at which the token is refreshed: min(30 s, half its lifetime). */
  private margin(): number {
    return Math.min(30000, (this.exp! * 1000 - this.tokenAt) / 2);
  }

  /** expiring: the cached token is within the refresh margin of its exp. */
  private expiring(): boolean {
    return this.exp !== undefined && this.exp * 1000 - Date.now() <= this.margin();
  }

  /**
   * armRefresh sets the refresh timer for the current token (none without
   * getToken or exp). Timers take at most 2³¹-1 ms (24.8 days) and fire at
   * once past it, so a longer wait is made of several.
   */
  private armRefresh(delay?: number): void {
    clearTimeout(this.refreshTimer);
    if (!this.getToken || this.exp === undefined) return;
    if (delay === undefined) delay = this.exp * 1000 - Date.now() - this.margin();
    const longest = 2 ** 31 - 1;
    this.refreshTimer = setTimeout(() => (delay! > longest ? this.armRefresh() : this.refresh()), Math.min(delay, longest));
  }

  /** refresh gets a token and sends it on the current connection. */
  private async refresh(): Promise<void> {
    const ws = this.ws;
    let token: string | null;
    try {
      token = await this.getToken!();
    } catch (err) {
      if (ws == this.ws) this.refreshFailed(new ShardgateError('token', 'getToken failed', err));
      return;
    }
    if (ws != this.ws) return;
    if (token == null) return this.stop(1000, 'no token');
    const at = Date.now();
    this.request({ type: 'refresh', token }, (reply) => {
      if (!reply) return;
      if (reply.type != 'refreshed') return this.refreshFailed(new ShardgateError(String(reply.code), reply.message));
      this.refreshFailures = 0;
      this.token = token!;
      this.tokenAt = at;
      this.exp = reply.expires;
      this.armRefresh();
    });
  }

  /**
   * refreshFailed reports err and tries again after the backoff delay
   * while the token is in force; past its exp the gateway closes with
   * 4001 and the client reconnects with a fresh token.
   */
  private refreshFailed(err: ShardgateError): void {
    this.emit('error', err);
    if (Date.now() < this.exp! * 1000) this.armRefresh(backoff(this.refreshFailures++, this.min, this.max));
  }
}
