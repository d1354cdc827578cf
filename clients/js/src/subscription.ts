import { safeCall } from './emitter.js';
import type { Frame, Request } from './protocol.js';
import type { SubscriptionHandlers } from './types.js';

/**
 * A subscription to one channel, returned by Client.subscribe. It stays
 * registered across reconnects until unsubscribe(), an unsubscribe by the
 * gateway, or a subscribe error that ends it.
 *
 * Recovery is one invariant: `offset` is the offset of the last message
 * handed to the application, or the one the last non-recovering
 * `subscribed` announced (nothing at or below it follows). Every
 * subscribe after the first asks to recover from (epoch, offset), and
 * every message at or below offset is a duplicate, whatever connection
 * brought it.
 */
export class Subscription {
  /** The channel. */
  readonly channel: string;
  /** @internal */
  readonly handlers: SubscriptionHandlers;
  /** @internal The channel's history epoch, once a subscribed reply had one. */
  epoch?: string;
  /** @internal See the invariant above. */
  offset?: number;
  /** @internal The subscribe was answered on the current connection: its messages count. */
  live = false;
  /** @internal Consecutive rate_limited/unavailable answers, for the backoff. */
  retries = 0;
  /** @internal The retry of a refused subscribe. */
  timer?: ReturnType<typeof setTimeout>;
  private readonly end: (sub: Subscription) => void;

  /** @internal Subscriptions are made by Client.subscribe. */
  constructor(channel: string, handlers: SubscriptionHandlers, end: (sub: Subscription) => void) {
    this.channel = channel;
    this.handlers = handlers;
    this.end = end;
  }

  /** unsubscribe ends the subscription: none of its handlers is called after it. */
  unsubscribe(): void {
    this.end(this);
  }

  /** @internal The subscribe request, asking to recover when there is a position to recover from. */
  request(): Request {
    const req: Request = { type: 'subscribe', channel: this.channel };
    if (this.epoch !== undefined) req.recover = { epoch: this.epoch, offset: this.offset };
    return req;
  }

  /**
   * @internal The `subscribed` reply. A recovering one keeps the position:
   * the missed messages follow it, after the client's offset. Any other
   * starts over from the channel's latest offset (or from none when
   * history is off).
   */
  subscribed(reply: Frame): void {
    this.live = true;
    this.retries = 0;
    if (!reply.recovered) {
      this.epoch = reply.epoch;
      this.offset = reply.offset;
    }
    safeCall(this.handlers.subscribed, { epoch: reply.epoch, offset: reply.offset, recovered: reply.recovered });
  }

  /** @internal A `message` of the channel: handed over once, in order. */
  deliver(m: Frame): void {
    if (!this.live) return;
    if (m.offset !== undefined) {
      if (this.offset !== undefined && m.offset <= this.offset) return;
      this.offset = m.offset;
    }
    safeCall(this.handlers.message, m.data, { channel: this.channel, offset: m.offset });
  }
}
