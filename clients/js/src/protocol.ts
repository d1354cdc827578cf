/**
 * Frame is any JSON object the gateway sends (its "Client protocol");
 * each type uses some of the fields.
 */
export interface Frame {
  type: string;
  id?: number | string;
  channel?: string;
  data?: unknown;
  offset?: number;
  epoch?: string;
  recovered?: boolean;
  code?: string;
  message?: string;
  reason?: string;
  expires?: number;
}

/** Request is a frame the client sends; `id` is set when it is sent. */
export interface Request {
  type: string;
  id?: number;
  [field: string]: unknown;
}
