export type { ExportLeaseOptions } from "./lease.js";
export { ExportLease, LeaseGuard } from "./lease.js";
export type { LeaseRecord } from "./record.js";
export { decodeLeaseRecord, encodeLeaseRecord } from "./record.js";
