/**
 * The rules of the shared internal token (gateway -> worker conversation reads, signed with
 * it: platform/internal-auth.ts), checked once at start by the config and again whenever a
 * service re-reads its token file.
 */

/** Fewer characters than this could be guessed offline from one signature a rogue endpoint received. */
export const MIN_TOKEN_CHARS = 32;

/** The tokens of a token file's text: one per line, blank lines and # comments left out. */
export function parseTokens(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

/** What is wrong with a keyring's tokens (never quoting them), or null. */
export function tokensProblem(tokens: readonly string[]): string | null {
  if (tokens.length === 0) return "holds no token";
  const short = tokens.findIndex((t) => t.length < MIN_TOKEN_CHARS);
  if (short >= 0) return `token ${short + 1} is shorter than ${MIN_TOKEN_CHARS} characters`;
  if (tokens.some((t) => /\s/.test(t))) return "a token contains white space";
  return null;
}

/** True for a host name or address that stays on this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h);
}
