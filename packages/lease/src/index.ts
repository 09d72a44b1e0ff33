export { ExportLease, LeaseGuard } from "./lease.js";
export type { ExportLeaseOptions } from "./lease.js";
export { encodeLeaseRecord, decodeLeaseRecord } from "./record.js";
export type { LeaseRecord } from "./record.js";
