/**
 * A worker's kafka_llm_turn_phase_seconds (worker/turn-phases.ts) read from its /metrics:
 * the sum and count of each phase, so a scenario can take the mean time of each phase over
 * the turns between two reads.
 */
export type PhaseTotals = Map<string, { sum: number; count: number }>;

const LINE = /^kafka_llm_turn_phase_seconds_(sum|count)\{([^}]*)\} ([0-9.eE+-]+)$/;

export async function readTurnPhases(workerBaseUrl: string): Promise<PhaseTotals> {
  const res = await fetch(`${workerBaseUrl}/metrics`);
  if (!res.ok) throw new Error(`GET ${workerBaseUrl}/metrics: HTTP ${res.status}`);
  const totals: PhaseTotals = new Map();
  for (const line of (await res.text()).split("\n")) {
    const m = LINE.exec(line);
    if (!m) continue;
    const phase = /phase="([^"]+)"/.exec(m[2]!)?.[1];
    if (!phase) continue;
    const t = totals.get(phase) ?? { sum: 0, count: 0 };
    t[m[1] as "sum" | "count"] += Number(m[3]);
    totals.set(phase, t);
  }
  return totals;
}

/** Adds what each phase gained from `before` to `after` into `into`. */
export function addPhaseDiff(into: PhaseTotals, before: PhaseTotals, after: PhaseTotals): void {
  for (const [phase, a] of after) {
    const b = before.get(phase) ?? { sum: 0, count: 0 };
    const t = into.get(phase) ?? { sum: 0, count: 0 };
    t.sum += a.sum - b.sum;
    t.count += a.count - b.count;
    into.set(phase, t);
  }
}

/** Mean milliseconds per turn of each phase (0 when the phase was never seen). */
export function meanPhaseMs(totals: PhaseTotals, phases: readonly string[]): Record<string, number> {
  return Object.fromEntries(
    phases.map((p) => [
      p,
      (() => {
        const t = totals.get(p);
        return t && t.count > 0 ? (t.sum / t.count) * 1000 : 0;
      })(),
    ]),
  );
}
