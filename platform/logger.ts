/**
 * pino JSON logs. At info level nothing logs prompt or reply text, nor secrets:
 * request and conversation ids are the handles for finding a turn.
 */
import { pino, type DestinationStream, type Logger } from "pino";

export type { Logger };

/** Logs to stdout, or to `destination` (tests read what was written). */
export function createLogger(service: string, level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ["*.password", "*.sasl", "*.apiKey", "*.authorization", "headers.authorization"], remove: true },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
