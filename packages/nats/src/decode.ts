/** Decodes stored KV messages: subject → key, `KV-Operation` → update type, stream sequence → version. */
import type { MsgHdrs } from "@nats-io/nats-core";
import { type KvUpdate, VersionToken } from "@slipstream/core";

export const KV_OPERATION = "KV-Operation";
export const MSG_SIZE = "Nats-Msg-Size";

/** The operation a KV message carries. */
export type KvOperation = "PUT" | "DEL" | "PURGE";

/** Reads the KV operation from headers (no header = PUT). */
export function operationOf(headers: MsgHdrs | undefined): KvOperation {
  const op = headers?.get(KV_OPERATION) ?? "";
  if (op === "DEL") return "DEL";
  if (op === "PURGE") return "PURGE";
  return "PUT";
}

/** The key of `subject` in the bucket subject space `subjectPrefix`, or undefined outside it. */
export function keyOf(subjectPrefix: string, subject: string): string | undefined {
  if (!subject.startsWith(subjectPrefix) || subject.length === subjectPrefix.length) return undefined;
  return subject.slice(subjectPrefix.length);
}

/**
 * The update a KV message stands for. Delete markers → delete, purge markers → purge, every
 * other message → put, including empty-value CAS tombstones. The version is always the
 * message's stream sequence.
 */
export function toUpdate(key: string, seq: number, headers: MsgHdrs | undefined, data: Uint8Array): KvUpdate {
  const version = VersionToken.fromSequence(seq);
  switch (operationOf(headers)) {
    case "DEL":
      return { type: "delete", key, version };
    case "PURGE":
      return { type: "purge", key, version };
    default:
      return { type: "put", entry: { key, value: data, version } };
  }
}
