/**
 * The worker pod's init container: makes sure MODEL (an `hf:` URI or an https URL) is in
 * MODEL_DIR, downloading it only when it is not there yet. The worker then resolves the
 * same MODEL in the same directory and finds the file without touching the network.
 *
 *   MODEL=hf:unsloth/gemma-3-1b-it-GGUF:Q4_K_M MODEL_DIR=/models node dist/scripts/deploy/fetch-model.js
 *
 * Several pods may share MODEL_DIR (a ReadWriteMany volume): each downloads into a
 * staging directory of its own on that volume and renames the finished files into place,
 * so a pod never sees half a file. A local path is only checked for existence.
 * Exit codes: 0 ready, 1 failed, 2 bad configuration.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { resolveModelFile } from "node-llama-cpp";
import { createLogger } from "../../platform/logger.js";

const REMOTE = /^(hf:|https?:)/;

async function main(): Promise<number> {
  const source = process.env.MODEL?.trim() ?? "";
  const directory = path.resolve(process.env.MODEL_DIR?.trim() || ".cache/models");
  const logger = createLogger("fetch-model", process.env.LOG_LEVEL?.trim() || "info");
  if (!source) {
    process.stderr.write("fetch-model: MODEL: required: a GGUF file path or an hf: URI\n");
    return 2;
  }
  if (!REMOTE.test(source)) {
    const file = path.resolve(source);
    if (existsSync(file)) {
      logger.info({ file }, "model file present");
      return 0;
    }
    logger.error({ file }, "model file not found");
    return 1;
  }

  const cached = await resolveModelFile(source, { directory, download: false, cli: false }).catch(() => null);
  if (cached) {
    logger.info({ source, file: cached }, "model already in the cache; nothing to download");
    return 0;
  }

  const staging = await mkdtemp(path.join(directory, ".partial-"));
  try {
    logger.info({ source, directory }, "downloading model");
    let reported = -1;
    const downloaded = await resolveModelFile(source, {
      directory: staging,
      cli: false,
      onProgress({ totalSize, downloadedSize }) {
        const tenth = totalSize > 0 ? Math.floor((downloadedSize / totalSize) * 10) : 0;
        if (tenth > reported) {
          reported = tenth;
          logger.info({ downloadedBytes: downloadedSize, totalBytes: totalSize }, `downloaded ${tenth * 10}%`);
        }
      },
    });
    // Split models download as several files: move them all, the first part last, so the
    // name the worker looks for appears only once every part is in place.
    const names = (await readdir(staging)).filter((n) => !n.startsWith("."));
    const first = path.basename(downloaded);
    for (const name of [...names.filter((n) => n !== first), first]) {
      await rename(path.join(staging, name), path.join(directory, name));
    }
    const file = await resolveModelFile(source, { directory, download: false, cli: false });
    logger.info({ source, file }, "model downloaded and cached");
    return 0;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`fetch-model: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
