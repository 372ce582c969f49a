/**
 * The fields every topic's records share: the schema version and the identifiers a record
 * names its request, conversation and tenant by. Each topic's module builds on these, so an
 * id is bounded the same way wherever it travels (a Kafka key, a URL path segment, a log
 * line). Field names are snake_case because they are also the HTTP API's names; `v` is the
 * schema version, and readers reject versions they do not know.
 */
import { z } from "zod";
import { MAX_METADATA_PAIRS } from "../limits.js";

export const SCHEMA_VERSION = 1;

/** Conversation ids are parts of Kafka keys and URL path segments: keep them printable and short. */
export const conversationIdSchema = z
  .string()
  .min(1, "must not be empty")
  .max(128, "must be at most 128 characters")
  .regex(/^[A-Za-z0-9._:-]+$/, "may contain only letters, digits, '.', '_', ':' and '-'");

export const requestIdSchema = z
  .string()
  .min(1, "must not be empty")
  .max(128, "must be at most 128 characters")
  .regex(/^[A-Za-z0-9._:-]+$/, "may contain only letters, digits, '.', '_', ':' and '-'");

/** Who a conversation belongs to: the API key's tenant ("local" when auth is off). */
export const tenantSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._-]+$/, "may contain only letters, digits, '.', '_' and '-'");

/**
 * A conversation's metadata (OpenAI's Conversations API): at most 16 pairs, keys of at most
 * 64 characters, values of at most 512.
 */
export const metadataSchema = z
  .record(z.string().max(64, "keys must be at most 64 characters"), z.string().max(512, "values must be at most 512 characters"))
  .refine((m) => Object.keys(m).length <= MAX_METADATA_PAIRS, `must hold at most ${MAX_METADATA_PAIRS} pairs`);

/** A Kafka offset, as records that point at other records (chat.events, chat.history) hold it. */
export const offsetSchema = z.number().int().nonnegative();
