/**
 * The error every failure of the client carries. `code` is the gateway's
 * error code (`forbidden`, `rate_limited`, `unavailable`, `bad_channel`,
 * `too_many_subscriptions`, `bad_token`, `bad_request`, ...) or one of the
 * client's own:
 *
 * - `disconnected`: a publish made while not connected, or whose
 *   connection was lost before the answer (it may or may not have been
 *   delivered; it is never sent again);
 * - `timeout`: no answer to a publish within `publishTimeout`;
 * - `token`: `getToken()` threw or rejected (the original error is `cause`);
 * - `already_subscribed`: `subscribe()` on a channel the client already has
 *   a subscription to;
 * - `websocket`: the WebSocket constructor threw (a malformed URL, say).
 */
export class ShardgateError extends Error {
  readonly code: string;
  /** What caused it, when the client caught another error. */
  readonly cause?: unknown;

  constructor(code: string, message?: string, cause?: unknown) {
    super(message || code);
    this.name = 'ShardgateError';
    this.code = code;
    if (cause !== undefined) this.cause = cause;
  }
}
