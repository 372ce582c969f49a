/**
 * How a service's main() runs: a configuration error exits 2 with the list of problems
 * (nothing else to say), anything else fatal exits 1 with its stack, and an unhandled
 * rejection is reported instead of passing silently.
 */
import { ConfigError } from "../contracts/config/env.js";

export function runService(name: string, main: () => Promise<void>): void {
  process.on("unhandledRejection", (reason) => {
    process.stderr.write(`kafka-llm ${name}: unhandled rejection: ${String((reason as Error)?.stack ?? reason)}\n`);
  });
  main().catch((err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`kafka-llm ${name}: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`kafka-llm ${name}: fatal: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
