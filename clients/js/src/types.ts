import type { ShardgateError } from './errors.js';

/** The client's state (see clients/README.md, "States"). */
export type State = 'disconnected' | 'connecting' | 'connected';

/**
 * The part of a WebSocket the client uses: the browser's `WebSocket`, the
 * `ws` package's, or Node.js 22's global one all fit.
 */
export interface WebSocketLike {
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: `new WebSocket(url)`. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /**
   * Called for a token before the first connect, when the cached one is
   * within the refresh margin of its `exp`, after a 4001 close, after an
   * attempt that failed before the WebSocket opened, and to refresh the
   * token in place. Resolve to `null` to stop: the client goes to
   * `disconnected`. A rejection is reported as an `error` event (code
   * `token`) and retried after the backoff delay.
   */
  getToken?: () => Promise<string | null>;
  /** A static token: alone, used for every connection and never refreshed; with getToken, the first token used. */
  token?: string;
  /** The WebSocket constructor; default `globalThis.WebSocket`. In Node.js 20 pass `ws`'s. */
  WebSocket?: WebSocketConstructor;
  /** Smallest reconnect delay, ms (default 500). */
  minReconnectDelay?: number;
  /** Largest reconnect delay, ms (default 20000). */
  maxReconnectDelay?: number;
  /** How long a publish waits for its answer before failing with `timeout`, ms (default 10000). */
  publishTimeout?: number;
}

/** `connecting`: an attempt is scheduled. */
export interface ConnectingEvent {
  /** Close code of the connection or attempt that just ended; absent after connect(). */
  code?: number;
  /** Its close reason. */
  reason?: string;
  /** Milliseconds until the attempt starts (0: at once). */
  delay: number;
  /** The URL the attempt will use (without the token). */
  url: string;
}

/** `connected`: a WebSocket opened. */
export interface ConnectedEvent {
  /** The URL that answered (without the token). */
  url: string;
}

/** `disconnected`: the client stopped; nothing reconnects until connect(). */
export interface DisconnectedEvent {
  /**
   * 4003 when the gateway disconnected the user; 1000 when the client
   * stopped itself (disconnect(), or getToken() resolved to null).
   */
  code: number;
  /** The gateway's close reason, or `disconnect` / `no token`. */
  reason: string;
}

/** The client's events and what each listener receives. */
export interface ClientEvents {
  connecting: ConnectingEvent;
  connected: ConnectedEvent;
  disconnected: DisconnectedEvent;
  /** The data of a message sent to every connection (published without a channel). */
  message: unknown;
  /** A failure that belongs to no request: getToken(), a refresh, an error frame without id. */
  error: ShardgateError;
}

/** What a subscription's message handler gets beside the data. */
export interface MessageInfo {
  channel: string;
  /** The message's offset in its channel (history on), absent otherwise. */
  offset?: number;
}

/** The gateway's `subscribed` reply. */
export interface SubscribedInfo {
  /** The channel's history epoch (history on). */
  epoch?: string;
  /** The channel's latest offset when the subscription took effect (history on). */
  offset?: number;
  /**
   * Present when the subscribe asked to recover (every resubscribe after
   * the first `subscribed` with an epoch): false means messages may have
   * been missed; reload the channel's state from your backend.
   */
  recovered?: boolean;
}

/** Why a subscription ended without an error. */
export interface UnsubscribedInfo {
  /** The gateway's reason (`forbidden`: a refreshed token no longer allows the channel); absent after unsubscribe(). */
  reason?: string;
}

/** A subscription's callbacks; every one is optional. */
export interface SubscriptionHandlers {
  /** A message of the channel, once and in order. */
  message?(data: unknown, info: MessageInfo): void;
  /** Every time the subscribe took effect: the first time and after each reconnect. */
  subscribed?(info: SubscribedInfo): void;
  /** The gateway ended the subscription (reason `forbidden`); not called after unsubscribe(). */
  unsubscribed?(info: UnsubscribedInfo): void;
  /** The subscription ended with an error: `forbidden`, `bad_channel`, `too_many_subscriptions`, ... */
  error?(err: ShardgateError): void;
}
