/**
 * A trace as a waterfall in SVG, for the README (bench/trace-picture.ts makes it from a
 * real run). Jaeger's web UI is not in the binary we build from Go modules, and a picture
 * on GitHub must be one self-contained file: no script, no external font or stylesheet.
 *
 * One panel per trace, each with its own time axis: a row per span, children under their
 * parent; among siblings, each service instance's spans stay together (a worker's queue
 * wait beside its run), in order of start. A span whose parent never reached Jaeger (a
 * killed worker's `process` span never ends, so it is never sent) is drawn under a
 * synthesized row for its instance, dashed and marked as such, placed where that
 * instance's other spans hang. Three or more childless siblings of one name (a client's
 * polls) share one row. Pure: the same spans and options give the same bytes.
 */

/** What the picture reads of a span: a subset of testkit/jaeger.ts's JaegerSpan. */
export interface TraceSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** null for a root span. */
  readonly parentSpanId: string | null;
  readonly name: string;
  /** The resource's service.name. */
  readonly service: string;
  /** The resource's service.instance.id: the worker id. */
  readonly instance: string;
  /** Microseconds since the epoch. */
  readonly startUs: number;
  readonly endUs: number;
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly status?: { readonly code: string };
}

export interface TraceSvgOptions {
  readonly title?: string;
  /** The panels, in order, with their titles; default every trace in the spans, by start. */
  readonly traces?: ReadonlyArray<{ readonly traceId: string; readonly title?: string }>;
  /** The synthesized row's label per instance (default: "<instance>: spans whose parent never arrived"). */
  readonly orphanLabels?: Readonly<Record<string, string>>;
  /** Vertical lines across a panel at a moment (µs since the epoch), e.g. a worker's kill. */
  readonly markers?: ReadonlyArray<{ readonly traceId?: string; readonly atUs: number; readonly label: string }>;
  /** Pixels; default 1000. */
  readonly width?: number;
}

/** A picture's data as bench/trace-picture.ts stores it beside the SVG. */
export interface TracePicture {
  readonly spans: TraceSpan[];
  readonly options: TraceSvgOptions;
}

export interface Row {
  /** "span": one span; "repeats": several childless siblings of one name; "missing": the synthesized parent of orphans. */
  readonly kind: "span" | "repeats" | "missing";
  readonly depth: number;
  readonly name: string;
  readonly service: string;
  readonly instance: string;
  readonly spans: readonly TraceSpan[];
  readonly startUs: number;
  readonly endUs: number;
}

const REPEATS_MIN = 3;

interface Node {
  readonly kind: "span" | "missing";
  readonly name: string;
  readonly service: string;
  readonly instance: string;
  readonly span: TraceSpan | null;
  readonly children: Node[];
  startUs: number;
  endUs: number;
}

/**
 * A trace's rows in tree order. Roots are spans without a parent, or whose parent is the
 * caller's (the parent of the trace's first span, outside the trace). Every other span
 * with a parent not in the trace goes under a synthesized "missing" row for its instance.
 */
export function traceRows(spans: readonly TraceSpan[], orphanLabels: Readonly<Record<string, string>> = {}): Row[] {
  if (spans.length === 0) return [];
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const first = [...spans].sort(byStart)[0]!;
  const callerId = first.parentSpanId !== null && !byId.has(first.parentSpanId) ? first.parentSpanId : null;
  const nodes = new Map(spans.map((s) => [s.spanId, spanNode(s)]));
  const roots: Node[] = [];
  const orphans = new Map<string, TraceSpan[]>();
  for (const s of spans) {
    const node = nodes.get(s.spanId)!;
    if (s.parentSpanId === null || s.parentSpanId === callerId) roots.push(node);
    else if (byId.has(s.parentSpanId)) nodes.get(s.parentSpanId)!.children.push(node);
    else orphans.set(instanceKey(s), [...(orphans.get(instanceKey(s)) ?? []), s]);
  }
  for (const [key, lost] of orphans) {
    const { service, instance } = lost[0]!;
    const missing: Node = {
      kind: "missing",
      name: orphanLabels[instance] ?? `${instance || service}: spans whose parent never arrived`,
      service,
      instance,
      span: null,
      children: lost.map((s) => nodes.get(s.spanId)!),
      startUs: 0,
      endUs: 0,
    };
    // Beside the instance's spans that have a parent: where its run would hang.
    const kin = spans.filter((s) => instanceKey(s) === key && s.parentSpanId !== null && byId.has(s.parentSpanId)).sort(byStart)[0];
    if (kin) nodes.get(kin.parentSpanId!)!.children.push(missing);
    else roots.push(missing);
  }
  for (const root of roots) extent(root);
  const rows: Row[] = [];
  for (const root of ordered(roots)) walk(root, 0, rows);
  return rows;
}

function spanNode(s: TraceSpan): Node {
  return { kind: "span", name: s.name, service: s.service, instance: s.instance, span: s, children: [], startUs: s.startUs, endUs: s.endUs };
}

const instanceKey = (s: { service: string; instance: string }) => `${s.service}\u0000${s.instance}`;
const byStart = (a: { startUs: number; endUs: number }, b: { startUs: number; endUs: number }) => a.startUs - b.startUs || a.endUs - b.endUs;

/** A synthesized node spans its children; a span node is its own span. */
function extent(node: Node): void {
  for (const c of node.children) extent(c);
  if (node.kind === "missing") {
    node.startUs = Math.min(...node.children.map((c) => c.startUs));
    node.endUs = Math.max(...node.children.map((c) => c.endUs));
  }
}

/** Siblings by start, each instance's together (ordered by its first start, then its last end). */
function ordered(nodes: readonly Node[]): Node[] {
  const groups = new Map<string, Node[]>();
  for (const n of [...nodes].sort(byStart)) groups.set(instanceKey(n), [...(groups.get(instanceKey(n)) ?? []), n]);
  const span = (g: Node[]) => ({ startUs: g[0]!.startUs, endUs: Math.max(...g.map((n) => n.endUs)) });
  return [...groups.values()].sort((a, b) => byStart(span(a), span(b))).flat();
}

function walk(node: Node, depth: number, rows: Row[]): void {
  rows.push({
    kind: node.kind,
    depth,
    name: node.name,
    service: node.service,
    instance: node.instance,
    spans: node.span ? [node.span] : [],
    startUs: node.startUs,
    endUs: node.endUs,
  });
  const children = ordered(node.children);
  for (let i = 0; i < children.length;) {
    const c = children[i]!;
    let j = i + 1;
    const alike = (n: Node) => n.kind === "span" && n.children.length === 0 && n.name === c.name && instanceKey(n) === instanceKey(c);
    if (alike(c)) while (j < children.length && alike(children[j]!)) j++;
    if (j - i >= REPEATS_MIN) {
      const run = children.slice(i, j);
      rows.push({
        kind: "repeats",
        depth: depth + 1,
        name: c.name,
        service: c.service,
        instance: c.instance,
        spans: run.map((n) => n.span!),
        startUs: run[0]!.startUs,
        endUs: Math.max(...run.map((n) => n.endUs)),
      });
    } else {
      for (const n of children.slice(i, j)) walk(n, depth + 1, rows);
    }
    i = j;
  }
}

// --- Drawing ---

/** Fonts with Helvetica's metrics (macOS, Windows, most Linux), so that text can be measured here. */
const FONT = "Helvetica, Arial, 'Liberation Sans', 'Nimbus Sans', sans-serif";
const FONT_SIZE = 13;
const PAD = 16;
const ROW_H = 22;
const BAR_H = 12;
const INDENT = 14;
const NAME_W = 300;
const LABEL_ROOM = 200;
const GATEWAY = "#4e79a7";
const WORKER = "#e8833a";
const OTHER = "#8c8c8c";
const MARKER = "#c0392b";
const INK = "#1f2328";
const MUTED = "#656d76";
const GRID = "#d8dee4";

/** Helvetica's advance widths (1/1000 em) of the printable ASCII characters, from " " (32) to "~" (126). */
const ADVANCE = [
  278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584,
  556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278,
  469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260,
  334, 584,
];

/** The width of `text` in pixels at `size`, with 5% to spare (bold and other fonts run a little wider). */
function textWidth(text: string, size = FONT_SIZE): number {
  let em = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    em += ADVANCE[code - 32] ?? 1000;
  }
  return (em / 1000) * size * 1.05;
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** 1234567 → "1,234,567" (no locale: the bytes must not depend on the machine). */
function grouped(n: number): string {
  const [whole, frac] = String(n).split(".");
  return whole!.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (frac ? `.${frac}` : "");
}

/** Milliseconds to three significant figures at most: 0.42 ms, 12.3 ms, 1,234 ms. */
export function formatMs(us: number): string {
  const ms = us / 1000;
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  return `${grouped(Math.round(ms))} ms`;
}

/** A tick step of 1, 2 or 5 × 10^k ms giving at most `maxTicks` intervals over `totalUs`. */
export function tickStepMs(totalUs: number, maxTicks = 8): number {
  const raw = Math.max(totalUs / 1000 / maxTicks, 0.001);
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

/** The key attributes of a few spans, as short text beside the bar. */
function details(row: Row): string[] {
  if (row.kind === "repeats") {
    const starts = row.spans.map((s) => s.startUs);
    const gaps = starts.slice(1).map((at, i) => at - starts[i]!);
    const status = row.spans.at(-1)!.attributes["kafka_llm.response.status"];
    return [`every ${formatMs(median(gaps))}`, ...(typeof status === "string" ? [`last: ${status}`] : [])];
  }
  if (row.kind === "missing") return ["drawn from its finished children"];
  const a = row.spans[0]!.attributes;
  const out: string[] = [];
  const num = (key: string) => (typeof a[key] === "number" ? (a[key] as number) : undefined);
  if (num("http.response.status_code") !== undefined) out.push(`HTTP ${num("http.response.status_code")}`);
  if (typeof a["kafka_llm.outcome"] === "string") out.push(a["kafka_llm.outcome"]);
  const input = num("gen_ai.usage.input_tokens");
  const output = num("gen_ai.usage.output_tokens");
  if (input !== undefined && output !== undefined) {
    const cached = num("gen_ai.usage.cached_input_tokens");
    out.push(`${grouped(input)} in${cached ? ` (${grouped(cached)} cached)` : ""} → ${grouped(output)} out tokens`);
  }
  if (num("kafka_llm.events") !== undefined) out.push(`${num("kafka_llm.events")} events`);
  if (typeof a["kafka_llm.response.status"] === "string") out.push(a["kafka_llm.response.status"]);
  return out;
}

interface Panel {
  readonly traceId: string;
  readonly title: string;
  readonly rows: Row[];
  readonly startUs: number;
  readonly endUs: number;
}

/**
 * The waterfall of `spans` (one panel per trace) as a standalone SVG document, `options.width`
 * pixels wide (default 1000): bars coloured by service (gateway, worker), worker instances
 * told apart by a fill pattern, each bar's duration and key attributes beside it.
 */
export function renderTraceSvg(spans: readonly TraceSpan[], options: TraceSvgOptions = {}): string {
  const width = options.width ?? 1000;
  const byTrace = new Map<string, TraceSpan[]>();
  for (const s of spans) byTrace.set(s.traceId, [...(byTrace.get(s.traceId) ?? []), s]);
  const wanted: ReadonlyArray<{ traceId: string; title?: string }> =
    options.traces ??
    [...byTrace.entries()]
      .sort(([, a], [, b]) => Math.min(...a.map((s) => s.startUs)) - Math.min(...b.map((s) => s.startUs)))
      .map(([traceId]) => ({ traceId }));
  const panels: Panel[] = wanted.flatMap(({ traceId, title }) => {
    const own = byTrace.get(traceId);
    if (own === undefined) return [];
    const rows = traceRows(own, options.orphanLabels);
    const startUs = Math.min(...own.map((s) => s.startUs));
    const endUs = Math.max(...own.map((s) => s.endUs));
    return [{ traceId, title: title ?? `trace ${traceId}`, rows, startUs, endUs }];
  });

  const workers = [...new Set(spans.filter((s) => serviceKind(s.service) === "worker").map((s) => s.instance))].sort();
  const instances = new Map<string, Set<string>>();
  for (const s of spans) instances.set(s.service, (instances.get(s.service) ?? new Set()).add(s.instance));
  const tagged = (row: Row) => (instances.get(row.service)?.size ?? 0) > 1;
  const fillOf = (row: Pick<Row, "service" | "instance">) => {
    const kind = serviceKind(row.service);
    if (kind === "gateway") return GATEWAY;
    if (kind === "other") return OTHER;
    const i = workers.indexOf(row.instance);
    return i <= 0 ? WORKER : `url(#worker-${Math.min(i, PATTERNS.length)})`;
  };

  const out: string[] = [];
  let y = PAD;
  if (options.title) {
    out.push(text(PAD, y + 15, options.title, { size: 16, weight: 600 }));
    y += 28;
  }
  y = legend(out, PAD, y, workers, fillOf) + 14;

  for (const panel of panels) y = drawPanel(out, panel, y, { width, options, fillOf, tagged });

  const height = round(y);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${escapeXml(FONT)}" font-size="${FONT_SIZE}">`,
    `<defs>${PATTERNS.map((p, i) => p(`worker-${i + 1}`)).join("")}</defs>`,
    `<rect width="${width}" height="${height}" rx="6" fill="#ffffff" stroke="${GRID}"/>`,
    ...out,
    `</svg>`,
    "",
  ].join("\n");
}

/** A trace's panel from `y` down: its title, its time axis, its rows and markers; returns the y below it. */
function drawPanel(
  out: string[],
  panel: Panel,
  y: number,
  g: { width: number; options: TraceSvgOptions; fillOf: (row: Row) => string; tagged: (row: Row) => boolean },
): number {
  const x0 = PAD + NAME_W;
  const x1 = g.width - PAD - LABEL_ROOM;
  const total = panel.endUs - panel.startUs;
  const scale = (x1 - x0) / Math.max(total, 1);
  const xOf = (us: number) => x0 + (us - panel.startUs) * scale;
  out.push(text(PAD, y + 14, `${panel.title} — ${formatMs(total)} in all`, { size: 14, weight: 600 }));
  const axisY = y + 40;
  const rowsTop = axisY + 5;
  const rowsBottom = rowsTop + panel.rows.length * ROW_H;
  // Under everything: the rows' stripes, the grid, the markers' lines.
  panel.rows.forEach((_, i) => {
    if (i % 2 === 1) out.push(`<rect x="${PAD}" y="${rowsTop + i * ROW_H}" width="${g.width - 2 * PAD}" height="${ROW_H}" fill="#f6f8fa"/>`);
  });
  const step = tickStepMs(total);
  for (let ms = 0; ms * 1000 <= total + 1e-6; ms += step) {
    const x = round(x0 + ms * 1000 * scale);
    out.push(`<line x1="${x}" y1="${axisY}" x2="${x}" y2="${rowsBottom}" stroke="${GRID}" stroke-width="1"/>`);
    out.push(text(x, axisY - 5, `${grouped(round(ms))} ms`, { size: 11, fill: MUTED, anchor: ms === 0 ? "start" : "middle" }));
  }
  out.push(`<line x1="${x0}" y1="${axisY}" x2="${x1}" y2="${axisY}" stroke="${MUTED}" stroke-width="1"/>`);
  const marks = (g.options.markers ?? []).filter(
    (m) => (m.traceId === undefined || m.traceId === panel.traceId) && m.atUs >= panel.startUs && m.atUs <= panel.endUs,
  );
  for (const m of marks) {
    const x = round(xOf(m.atUs));
    out.push(`<line x1="${x}" y1="${axisY}" x2="${x}" y2="${rowsBottom + 6}" stroke="${MARKER}" stroke-width="1.5" stroke-dasharray="4 3"/>`);
    out.push(text(x, rowsBottom + 20, `${m.label} at ${formatMs(m.atUs - panel.startUs)}`, { size: 12, fill: MARKER, weight: 600, anchor: "middle" }));
  }
  panel.rows.forEach((row, i) => {
    const tag = g.tagged(row) && row.kind !== "missing" && parentInstance(panel.rows, i) !== instanceKey(row) ? row.instance : "";
    out.push(...drawRow(row, rowsTop + i * ROW_H, tag, { x0, width: g.width, xOf, fill: g.fillOf(row) }));
  });
  return rowsBottom + (marks.length > 0 ? 44 : 24);
}

/** The second, third… worker's bars: the worker colour with white stripes, with dots. */
const PATTERNS: ReadonlyArray<(id: string) => string> = [
  (id) =>
    `<pattern id="${id}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="${WORKER}"/><rect width="2.5" height="6" fill="#ffffff" fill-opacity="0.75"/></pattern>`,
  (id) =>
    `<pattern id="${id}" width="5" height="5" patternUnits="userSpaceOnUse"><rect width="5" height="5" fill="${WORKER}"/><circle cx="2.5" cy="2.5" r="1.2" fill="#ffffff" fill-opacity="0.8"/></pattern>`,
];

function serviceKind(service: string): "gateway" | "worker" | "other" {
  if (service.includes("gateway")) return "gateway";
  if (service.includes("worker")) return "worker";
  return "other";
}

/** The instance of the row's parent row: the nearest row above it one level up. */
function parentInstance(rows: readonly Row[], i: number): string | null {
  const depth = rows[i]!.depth;
  for (let j = i - 1; j >= 0; j--) if (rows[j]!.depth < depth) return instanceKey(rows[j]!);
  return null;
}

/** A row: its name (indented, `instance` beside it when given), its bar(s), its duration and details. */
function drawRow(row: Row, top: number, instance: string, g: { x0: number; width: number; xOf: (us: number) => number; fill: string }): string[] {
  const out: string[] = [];
  const base = top + ROW_H / 2 + 4;
  const nameX = PAD + 6 + row.depth * INDENT;
  const tag = instance ? `  ${instance}` : "";
  const room = NAME_W - 12 - (nameX - PAD) - textWidth(tag, 12);
  const name = row.kind === "repeats" ? `${row.name} ×${row.spans.length}` : row.name;
  let shown = name;
  while (shown.length > 1 && textWidth(shown === name ? shown : `${shown}…`) > room) shown = shown.slice(0, -1);
  if (shown !== name) shown += "…";
  const style = row.kind === "missing" ? { fill: MUTED, italic: true } : { fill: INK };
  out.push(
    `<text x="${round(nameX)}" y="${round(base)}" fill="${style.fill}"${"italic" in style ? ` font-style="italic"` : ""}>${escapeXml(shown)}${
      tag ? `<tspan fill="${MUTED}" font-size="12">${escapeXml(tag)}</tspan>` : ""
    }</text>`,
  );

  const barTop = top + (ROW_H - BAR_H) / 2;
  const bar = (start: number, end: number, extra = "") => {
    const x = g.xOf(start);
    const w = Math.max(g.xOf(end) - x, 1.5);
    return `<rect x="${round(x)}" y="${round(barTop)}" width="${round(w)}" height="${BAR_H}" rx="2"${extra}/>`;
  };
  if (row.kind === "missing") {
    out.push(bar(row.startUs, row.endUs, ` fill="none" stroke="${MUTED}" stroke-width="1.2" stroke-dasharray="4 3"`));
  } else {
    const error = row.spans.some((s) => s.status?.code === "error");
    for (const s of row.spans) out.push(bar(s.startUs, s.endUs, ` fill="${g.fill}"${error ? ` stroke="${MARKER}" stroke-width="1.5"` : ""}`));
  }

  // Duration and details: right of the bar, else left of it, else at the right edge.
  const duration = row.kind === "missing" ? [`≥ ${formatMs(row.endUs - row.startUs)}`] : row.kind === "repeats" ? [] : [formatMs(row.endUs - row.startUs)];
  const label = [...duration, ...details(row)].join("  ·  ");
  const w = textWidth(label, 12);
  const right = g.xOf(row.endUs) + 6;
  const left = g.xOf(row.startUs) - 6;
  const at =
    right + w <= g.width - PAD
      ? { x: right, anchor: "start" as const }
      : left - w >= g.x0
        ? { x: left, anchor: "end" as const }
        : { x: g.width - PAD - 4, anchor: "end" as const };
  out.push(text(at.x, base - 0.5, label, { size: 12, fill: MUTED, anchor: at.anchor, halo: true }));
  return out;
}

function legend(out: string[], x: number, y: number, workers: readonly string[], fillOf: (row: Pick<Row, "service" | "instance">) => string): number {
  const items: Array<{ swatch: string; label: string }> = [
    { swatch: `fill="${GATEWAY}"`, label: "gateway" },
    ...(workers.length > 0 ? workers : [""]).map((instance) => ({
      swatch: `fill="${fillOf({ service: "worker", instance })}"`,
      label: instance || "worker",
    })),
    { swatch: `fill="none" stroke="${MUTED}" stroke-width="1.2" stroke-dasharray="4 3"`, label: "a span that never ended, drawn from its children" },
  ];
  let cx = x;
  for (const item of items) {
    out.push(`<rect x="${round(cx)}" y="${y + 1}" width="22" height="${BAR_H}" rx="2" ${item.swatch}/>`);
    out.push(text(cx + 28, y + 11, item.label, { size: 12, fill: INK }));
    cx += 28 + textWidth(item.label, 12) + 18;
  }
  return y + BAR_H + 4;
}

function text(
  x: number,
  y: number,
  content: string,
  style: { size?: number; weight?: number; fill?: string; anchor?: "start" | "middle" | "end"; halo?: boolean } = {},
): string {
  const attrs = [
    `x="${round(x)}"`,
    `y="${round(y)}"`,
    ...(style.size !== undefined && style.size !== FONT_SIZE ? [`font-size="${style.size}"`] : []),
    ...(style.weight !== undefined ? [`font-weight="${style.weight}"`] : []),
    `fill="${style.fill ?? INK}"`,
    ...(style.anchor && style.anchor !== "start" ? [`text-anchor="${style.anchor}"`] : []),
    // Legible over grid lines and markers.
    ...(style.halo ? [`stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke"`] : []),
  ];
  return `<text ${attrs.join(" ")}>${escapeXml(content)}</text>`;
}

const round = (n: number) => Math.round(n * 10) / 10;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}
