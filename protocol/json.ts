/**
 * JSON codec of protocol v1: decodes client text frames into validated
 * messages (never throwing), and encodes server messages.
 */
import { type ClientMessage, ClientMessageSchema, type ErrorCodeValue, ErrorCode, type ServerMessage, UnsubscribeSchema } from './messages.js';

/** The id rule, for naming the subscription of a frame that is otherwise invalid. */
const SubId = UnsubscribeSchema.shape.id;

export type DecodeResult =
  | { ok: true; message: ClientMessage }
  | { ok: false; code: ErrorCodeValue; message: string; /** the frame's subscription id, when it named a valid one */ id?: string };

/** Decodes one client text frame. Never throws. */
export function decodeClientFrame(text: string): DecodeResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // V8's message quotes the input; only the position is given back, so
    // that no part of a frame (a token, say) is ever echoed.
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    return { ok: false, code: ErrorCode.badJson, message: `Frame is not valid JSON${at !== undefined ? ` (at character ${at})` : ''}.` };
  }
  const parsed = ClientMessageSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length ? ` at "${issue.path.join('.')}"` : '';
    const id = SubId.safeParse((value as { id?: unknown } | null)?.id);
    return {
      ok: false,
      code: ErrorCode.badMessage,
      message: `Invalid message${where}: ${issue?.message ?? 'unknown'}`,
      ...(id.success && !issue?.path.includes('id') ? { id: id.data } : {}),
    };
  }
  return { ok: true, message: parsed.data };
}

/** Encodes a server message as one text frame. */
export function encodeServerMessage(msg: ServerMessage): string {
  return JSON.stringify(msg);
}
