/**
 * Debian's Chromium, headless, through playwright-core: the page tests' browser. The flags
 * keep it from reaching the network or a GPU on a CI machine (CHROMIUM_PATH overrides where
 * it is).
 */
import { chromium, type Browser } from "playwright-core";

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}
