/**
 * shardgate-client: the browser and Node.js client of the shardgate
 * WebSocket gateway. See README.md for usage and clients/README.md for the
 * behaviour it shares with the Go client.
 */
export { Client } from './client.js';
export { ShardgateError } from './errors.js';
export { Subscription } from './subscription.js';
export type {
  ClientEvents,
  ClientOptions,
  ConnectedEvent,
  ConnectingEvent,
  DisconnectedEvent,
  MessageInfo,
  State,
  SubscribedInfo,
  SubscriptionHandlers,
  UnsubscribedInfo,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';
