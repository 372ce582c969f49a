/**
 * chat.control: instructions every worker reads, whichever partitions it owns, because the
 * gateway that takes a cancel does not know which worker runs the request. Its one record
 * type is a cancel. Key: the request id.
 */
import { z } from "zod";
import { SCHEMA_VERSION, requestIdSchema, tenantSchema } from "./fields.js";

/** A value on chat.control. */
export const controlRecordSchema = z
  .object({
    v: z.literal(SCHEMA_VERSION),
    type: z.literal("cancel"),
    request_id: requestIdSchema,
    tenant: tenantSchema,
    reason: z.string().max(500).optional(),
    at: z.number().int().nonnegative(),
  })
  .strict();
export type ControlRecord = z.infer<typeof controlRecordSchema>;
