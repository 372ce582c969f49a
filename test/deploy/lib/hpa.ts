/**
 * The autoscaling settings of a rendered autoscaling/v2 HPA or KEDA ScaledObject, with
 * Kubernetes' defaults for what a behaviour leaves out, for pure checks of the chart's
 * values. The decisions themselves are the real HPA controller's
 * (test/deploy/k8s-autoscaling.test.ts).
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
    scaleUp: {
      stabilizationWindowSeconds: 0,
      selectPolicy: "Max" as const,
      policies: [
        { type: "Pods" as const, value: 4, periodSeconds: 15 },
        { type: "Percent" as const, value: 100, periodSeconds: 15 },
      ],
    },
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
      // The Prometheus scaler's threshold, or the Kafka scaler's lagThreshold.
      target: parseQuantity((t.metadata.threshold ?? t.metadata.lagThreshold)!),
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
