/**
 * The entry points the images build (dist/, from `npm run build`) and the chart runs:
 * dockerfiles.test.ts checks that the build makes them, chart.test.ts that the chart
 * runs nothing else.
 */
export const IMAGE_ENTRY_POINTS: readonly string[] = [
  "dist/worker/main.js",
  "dist/gateway/main.js",
  "dist/scripts/deploy/fetch-model.js",
  "dist/scripts/deploy/create-topics.js",
  "dist/scripts/deploy/chat-turn.js",
  "dist/scripts/deploy/ensure-secret.js",
];
