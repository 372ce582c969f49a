/**
 * pino JSON logs. At info level nothing logs prompt or reply text, nor secrets:
 * request and conversation ids are the handles for finding a turn.
 */
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(service: string, level: string): Logger {
  return pino({
    level,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ["*.password", "*.sasl", "*.apiKey", "*.authorization", "headers.authorization"], remove: true },
  });
}
