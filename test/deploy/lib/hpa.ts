/**
 * The Horizontal Pod Autoscaler's replica calculation, for an External metric with an
 * AverageValue target, as kube-controller-manager does it (pkg/controller/podautoscaler:
 * replica_calculator.go GetExternalPerPodMetricReplicas, horizontal.go
 * normalizeDesiredReplicasWithBehaviors, stabilizeRecommendationWithBehaviors,
 * convertDesiredReplicasWithBehaviorRate, calculateScale{Up,Down}Limit...). KEDA's
 * ScaledObject hands the same numbers to an HPA it creates, so it covers KEDA too.
 *
 * The bounds, target and behaviour come from a rendered HPA (or ScaledObject), so the
 * chart's real values are what is tested. Time is in seconds and given by the caller.
 */

export interface ScalingPolicy {
  type: "Pods" | "Percent";
  value: number;
  periodSeconds: number;
}

export interface ScalingRules {
  stabilizationWindowSeconds: number;
  selectPolicy: "Max" | "Min" | "Disabled";
  policies: ScalingPolicy[];
}

export interface HpaSpec {
  minReplicas: number;
  maxReplicas: number;
  /** AverageValue target of the one External metric. */
  target: number;
  scaleUp: ScalingRules;
  scaleDown: ScalingRules;
  /** --horizontal-pod-autoscaler-tolerance; 0.1 by default. */
  tolerance?: number;
}

/** Reads the spec from a rendered autoscaling/v2 HPA or a keda.sh ScaledObject. */
export function hpaSpecFrom(obj: { kind: string; spec?: unknown }): HpaSpec {
  const defaults = {
    // Kubernetes' defaults for fields a behaviour leaves out.
    scaleUp: { stabilizationWindowSeconds: 0, selectPolicy: "Max" as const, policies: [{ type: "Pods" as const, value: 4, periodSeconds: 15 }, { type: "Percent" as const, value: 100, periodSeconds: 15 }] },
    scaleDown: { stabilizationWindowSeconds: 300, selectPolicy: "Max" as const, policies: [{ type: "Percent" as const, value: 100, periodSeconds: 15 }] },
  };
  const rules = (r: Partial<ScalingRules> | undefined, d: ScalingRules): ScalingRules => ({
    stabilizationWindowSeconds: r?.stabilizationWindowSeconds ?? d.stabilizationWindowSeconds,
    selectPolicy: r?.selectPolicy ?? d.selectPolicy,
    policies: r?.policies ?? d.policies,
  });
  if (obj.kind === "HorizontalPodAutoscaler") {
    const s = obj.spec as {
      minReplicas?: number;
      maxReplicas: number;
      metrics: Array<{ type: string; external?: { target: { type: string; averageValue?: string | number } } }>;
      behavior?: { scaleUp?: Partial<ScalingRules>; scaleDown?: Partial<ScalingRules> };
    };
    if (s.metrics.length !== 1 || s.metrics[0]!.type !== "External" || s.metrics[0]!.external?.target.type !== "AverageValue") {
      throw new Error("this model covers one External metric with an AverageValue target");
    }
    return {
      minReplicas: s.minReplicas ?? 1,
      maxReplicas: s.maxReplicas,
      target: parseQuantity(s.metrics[0]!.external.target.averageValue!),
      scaleUp: rules(s.behavior?.scaleUp, defaults.scaleUp),
      scaleDown: rules(s.behavior?.scaleDown, defaults.scaleDown),
    };
  }
  if (obj.kind === "ScaledObject") {
    const s = obj.spec as {
      minReplicaCount?: number;
      maxReplicaCount?: number;
      advanced?: { horizontalPodAutoscalerConfig?: { behavior?: { scaleUp?: Partial<ScalingRules>; scaleDown?: Partial<ScalingRules> } } };
      triggers: Array<{ metricType?: string; metadata: Record<string, string> }>;
    };
    const t = s.triggers[0]!;
    if (s.triggers.length !== 1 || (t.metricType ?? "AverageValue") !== "AverageValue") throw new Error("one AverageValue trigger expected");
    const b = s.advanced?.horizontalPodAutoscalerConfig?.behavior;
    return {
      // KEDA's HPA never goes below 1; below that is KEDA's own activation.
      minReplicas: Math.max(1, s.minReplicaCount ?? 0),
      maxReplicas: s.maxReplicaCount ?? 100,
      target: parseQuantity(t.metadata.threshold!),
      scaleUp: rules(b?.scaleUp, defaults.scaleUp),
      scaleDown: rules(b?.scaleDown, defaults.scaleDown),
    };
  }
  throw new Error(`not an autoscaler: ${obj.kind}`);
}

/** A Kubernetes quantity as a number ("30", "1500m", "2k"). */
export function parseQuantity(q: string | number): number {
  if (typeof q === "number") return q;
  const m = /^([0-9.]+)(m|k|M|G)?$/.exec(q.trim());
  if (!m) throw new Error(`cannot read quantity ${q}`);
  const scale = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9 }[m[2] as "m" | "k" | "M" | "G"] ?? 1;
  return Number(m[1]) * scale;
}

/**
 * The raw recommendation for an External AverageValue metric: ceil(value / target),
 * unless the ratio to the current replicas is within the tolerance.
 */
export function externalPerPodReplicas(value: number, target: number, currentReplicas: number, tolerance = 0.1): number {
  const usageRatio = value / (target * currentReplicas);
  if (Math.abs(1 - usageRatio) <= tolerance) return currentReplicas;
  return Math.ceil(value / target);
}

export interface Decision {
  /** What the metric alone asks for (before stabilization and rate limits). */
  readonly raw: number;
  /** What the HPA sets the Deployment's replicas to. */
  readonly desired: number;
  readonly reason: string;
}

/** One HPA and its memory (recommendations, scale events), fed one sync at a time. */
export class HpaModel {
  private recommendations: Array<{ t: number; replicas: number }> = [];
  private upEvents: Array<{ t: number; change: number }> = [];
  private downEvents: Array<{ t: number; change: number }> = [];

  constructor(readonly spec: HpaSpec) {}

  /** One reconcile at time `t` (s) with `currentReplicas` running and the metric at `value`. */
  sync(t: number, currentReplicas: number, value: number): Decision {
    const s = this.spec;
    let desired: number;
    let raw = currentReplicas;
    let reason: string;
    if (currentReplicas === 0 && s.minReplicas !== 0) {
      return { raw: 0, desired: 0, reason: "scaling is disabled (0 replicas)" };
    } else if (currentReplicas > s.maxReplicas) {
      desired = s.maxReplicas;
      reason = "above maxReplicas";
    } else if (currentReplicas < s.minReplicas) {
      desired = s.minReplicas;
      reason = "below minReplicas";
    } else {
      raw = externalPerPodReplicas(value, s.target, currentReplicas, s.tolerance ?? 0.1);
      if (this.recommendations.length === 0 && s.scaleDown.stabilizationWindowSeconds > 0) {
        // maybeInitScaleDownStabilizationWindow: a new HPA does not scale down at once.
        this.recommendations.push({ t, replicas: currentReplicas });
      }
      const stabilized = this.stabilize(t, currentReplicas, raw);
      ({ desired, reason } = this.limitRate(t, currentReplicas, stabilized));
      if (desired === raw) reason = "metric";
      else if (stabilized !== raw && desired === stabilized) reason = "stabilization window";
    }
    if (desired > currentReplicas) this.upEvents.push({ t, change: desired - currentReplicas });
    if (desired < currentReplicas) this.downEvents.push({ t, change: currentReplicas - desired });
    return { raw, desired, reason };
  }

  private stabilize(t: number, current: number, recommended: number): number {
    const upCutoff = t - this.spec.scaleUp.stabilizationWindowSeconds;
    const downCutoff = t - this.spec.scaleDown.stabilizationWindowSeconds;
    let up = recommended;
    let down = recommended;
    for (const r of this.recommendations) {
      if (r.t > upCutoff) up = Math.min(r.replicas, up);
      if (r.t > downCutoff) down = Math.max(r.replicas, down);
    }
    let result = current;
    if (result < up) result = up;
    if (result > down) result = down;
    // Keep what either window can still need.
    const keep = Math.max(this.spec.scaleUp.stabilizationWindowSeconds, this.spec.scaleDown.stabilizationWindowSeconds);
    this.recommendations = this.recommendations.filter((r) => r.t > t - keep);
    this.recommendations.push({ t, replicas: recommended });
    return result;
  }

  private changeIn(events: Array<{ t: number; change: number }>, t: number, period: number): number {
    return events.filter((e) => e.t > t - period).reduce((sum, e) => sum + e.change, 0);
  }

  private limitRate(t: number, current: number, desired: number): { desired: number; reason: string } {
    const s = this.spec;
    if (desired > current) {
      let limit = this.scaleUpLimit(t, current);
      if (limit < current) limit = current;
      const max = Math.min(s.maxReplicas, limit);
      if (desired > max) return { desired: max, reason: limit < s.maxReplicas ? "scale-up rate limit" : "maxReplicas" };
    } else if (desired < current) {
      let limit = this.scaleDownLimit(t, current);
      if (limit > current) limit = current;
      const min = Math.max(s.minReplicas, limit);
      if (desired < min) return { desired: min, reason: limit > s.minReplicas ? "scale-down rate limit" : "minReplicas" };
    }
    return { desired, reason: "" };
  }

  private scaleUpLimit(t: number, current: number): number {
    const r = this.spec.scaleUp;
    if (r.selectPolicy === "Disabled") return current;
    let result = r.selectPolicy === "Min" ? Number.MAX_SAFE_INTEGER : Number.MIN_SAFE_INTEGER;
    for (const p of r.policies) {
      const start = current - this.changeIn(this.upEvents, t, p.periodSeconds) + this.changeIn(this.downEvents, t, p.periodSeconds);
      const proposed = p.type === "Pods" ? start + p.value : Math.ceil(start * (1 + p.value / 100));
      result = r.selectPolicy === "Min" ? Math.min(result, proposed) : Math.max(result, proposed);
    }
    return result;
  }

  private scaleDownLimit(t: number, current: number): number {
    const r = this.spec.scaleDown;
    if (r.selectPolicy === "Disabled") return current;
    let result = r.selectPolicy === "Min" ? Number.MIN_SAFE_INTEGER : Number.MAX_SAFE_INTEGER;
    for (const p of r.policies) {
      const start = current - this.changeIn(this.upEvents, t, p.periodSeconds) + this.changeIn(this.downEvents, t, p.periodSeconds);
      const proposed = p.type === "Pods" ? start - p.value : Math.trunc(start * (1 - p.value / 100));
      result = r.selectPolicy === "Min" ? Math.max(result, proposed) : Math.min(result, proposed);
    }
    return result;
  }
}
