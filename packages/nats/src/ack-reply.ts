/**
 * The delivery info of a JetStream message, read from its reply subject without allocating:
 * nats.js's `JsMsg.info` splits the subject into a dozen strings and builds an object per
 * message, which at hundreds of thousands of messages a second is a large share of a
 * watch's garbage.
 *
 * Reply subjects (stream, consumer and domain names never contain a dot):
 * - `$JS.ACK.<stream>.<consumer>.<deliveries>.<stream seq>.<delivery seq>.<timestamp>.<pending>`
 * - `$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<deliveries>.<stream seq>.<delivery seq>.<timestamp>.<pending>.<token>…`
 */

/** What {@link readAckReply} fills in. */
export interface AckReply {
  /** The message's stream sequence. */
  streamSequence: number;
  /** Its sequence among the consumer's deliveries. */
  deliverySequence: number;
  /** Messages the consumer still had for us after this one. */
  pending: number;
  /** Where the consumer's name lies in the subject: `[consumerStart, consumerEnd)`. */
  consumerStart: number;
  consumerEnd: number;
}

/** A fresh {@link AckReply} to pass to {@link readAckReply} again and again. */
export function ackReply(): AckReply {
  return { streamSequence: 0, deliverySequence: 0, pending: 0, consumerStart: 0, consumerEnd: 0 };
}

const ACK_PREFIX = "$JS.ACK.";
const DOT = 46;
const ZERO = 48;
const NINE = 57;
/** Dots of the longest form that matter: the pending count ends at the 11th. */
const MAX_DOTS = 11;
const dots = new Int32Array(MAX_DOTS);

/** The decimal number in `s[start, end)`, or -1 when that is empty, not all digits or not exact. */
function digits(s: string, start: number, end: number): number {
  if (end <= start) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < ZERO || c > NINE) return -1;
    n = n * 10 + (c - ZERO);
  }
  return Number.isSafeInteger(n) ? n : -1;
}

/** Where token `t` (≥ 1) starts, after the dot before it. */
function tokenStart(t: number): number {
  return (dots[t - 1] as number) + 1;
}

/** Where token `t` ends: at the next dot, or at the end of the subject. */
function tokenEnd(t: number, dotsSeen: number, length: number): number {
  return t < dotsSeen && t < MAX_DOTS ? (dots[t] as number) : length;
}

/**
 * Reads `reply` into `out`, as nats.js's `info` would (the 9-token form, or the longer one
 * with domain and account hash).
 * @returns false (and `out` unspecified) when `reply` is not a JetStream ack subject
 */
export function readAckReply(reply: string, out: AckReply): boolean {
  if (!reply.startsWith(ACK_PREFIX)) return false;
  let n = 0;
  for (let i = 0; i < reply.length; i++) {
    if (reply.charCodeAt(i) === DOT) {
      if (n === MAX_DOTS) {
        n++;
        break;
      }
      dots[n++] = i;
    }
  }
  // Tokens = dots + 1: 9 in the old form, 11 or more in the new one (more dots than
  // MAX_DOTS count as "more").
  let stream: number;
  if (n === 8) stream = 2;
  else if (n >= 10) stream = 4;
  else return false;
  const len = reply.length;
  out.consumerStart = tokenStart(stream + 1);
  out.consumerEnd = tokenEnd(stream + 1, n, len);
  out.streamSequence = digits(reply, tokenStart(stream + 3), tokenEnd(stream + 3, n, len));
  out.deliverySequence = digits(reply, tokenStart(stream + 4), tokenEnd(stream + 4, n, len));
  out.pending = digits(reply, tokenStart(stream + 6), tokenEnd(stream + 6, n, len));
  return (
    out.consumerEnd > out.consumerStart && out.streamSequence >= 0 && out.deliverySequence >= 0 && out.pending >= 0
  );
}

/**
 * {@link readAckReply} for the usual case, where the subject is known to start with
 * `prefix` = `$JS.ACK.<stream>.<consumer>.` (the short form, of the consumer in use): one
 * pass over the numbers after it. Returns false when `reply` has another form or consumer
 * (then call {@link readAckReply}).
 */
export function readAckReplyOf(reply: string, prefix: string, out: AckReply): boolean {
  if (!reply.startsWith(prefix)) return false;
  const len = reply.length;
  // <deliveries>.<stream seq>.<delivery seq>.<timestamp>.<pending>, nothing after it. The
  // timestamp (nanoseconds) is beyond 2^53 and not needed: digits only.
  let i = numberAt(reply, prefix.length, len);
  if (i < 0 || i === len || !Number.isSafeInteger(fieldValue)) return false;
  i = numberAt(reply, i + 1, len);
  if (i < 0 || i === len || !Number.isSafeInteger(fieldValue)) return false;
  const streamSequence = fieldValue;
  i = numberAt(reply, i + 1, len);
  if (i < 0 || i === len || !Number.isSafeInteger(fieldValue)) return false;
  const deliverySequence = fieldValue;
  i = numberAt(reply, i + 1, len);
  if (i < 0 || i === len) return false;
  i = numberAt(reply, i + 1, len);
  if (i !== len || !Number.isSafeInteger(fieldValue)) return false;
  out.streamSequence = streamSequence;
  out.deliverySequence = deliverySequence;
  out.pending = fieldValue;
  if (prefix !== lastPrefix) {
    lastPrefix = prefix;
    lastConsumerStart = prefix.lastIndexOf(".", prefix.length - 2) + 1;
  }
  out.consumerStart = lastConsumerStart;
  out.consumerEnd = prefix.length - 1;
  return true;
}

/** The value of the last number {@link numberAt} read. */
let fieldValue = 0;
/** The prefix {@link readAckReplyOf} saw last, and where its consumer name starts. */
let lastPrefix = "";
let lastConsumerStart = 0;

/**
 * Reads the decimal number starting at `i` up to the next dot or the end of `s` into
 * {@link fieldValue} (a watch reads three per message: no allocation, one tight loop each).
 * @returns where it ends (the dot or `len`), or -1 when it is empty or not all digits
 */
function numberAt(s: string, i: number, len: number): number {
  const start = i;
  let n = 0;
  for (; i < len; i++) {
    const d = s.charCodeAt(i) - ZERO;
    if (d === DOT - ZERO) break;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  if (i === start) return -1;
  fieldValue = n;
  return i;
}

/** Whether the consumer named in `reply` (as read into `info`) is `name`. */
export function fromConsumer(reply: string, info: AckReply, name: string): boolean {
  return info.consumerEnd - info.consumerStart === name.length && reply.startsWith(name, info.consumerStart);
}
