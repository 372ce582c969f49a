/**
 * The HPA model (lib/hpa.ts) on cases worked out by hand from the Kubernetes controller's
 * rules, with the bounds, targets and behaviour read from the chart's rendered HPA and
 * ScaledObject. metrics.test.ts feeds the same model the lag of a real burst.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { find, render, VARIANTS } from "./lib/chart.js";
import { externalPerPodReplicas, HpaModel, hpaSpecFrom, parseQuantity } from "./lib/hpa.js";

const lagHpa = () => hpaSpecFrom(find(render({ set: { "autoscaling.signal": "lag" } }), "HorizontalPodAutoscaler"));

describe("the raw recommendation (External metric, AverageValue target)", () => {
  it("is ceil(value / target), except within the 10% tolerance of the current replicas", () => {
    assert.equal(externalPerPodReplicas(40, 10, 2), 4);
    assert.equal(externalPerPodReplicas(17, 8, 2), 2, "17 / (8 × 2) = 1.06: within tolerance");
    assert.equal(externalPerPodReplicas(18, 8, 2), 3, "1.125: outside");
    assert.equal(externalPerPodReplicas(0, 8, 3), 0);
    assert.equal(externalPerPodReplicas(15, 8, 2), 2, "0.94: within tolerance");
    assert.equal(externalPerPodReplicas(14, 8, 2), 2, "0.875 → ceil(14/8) = 2");
    assert.equal(externalPerPodReplicas(7, 8, 2), 1);
  });
  it("reads quantities", () => {
    assert.equal(parseQuantity("30"), 30);
    assert.equal(parseQuantity("1500m"), 1.5);
    assert.equal(parseQuantity(8), 8);
  });
});

describe("the chart's HPA behaviour", () => {
  it("is read from the rendered HPA", () => {
    const spec = lagHpa();
    assert.deepEqual([spec.minReplicas, spec.maxReplicas, spec.target], [1, 6, 8]);
    assert.equal(spec.scaleUp.stabilizationWindowSeconds, 0);
    assert.equal(spec.scaleDown.stabilizationWindowSeconds, 300);
    const keda = hpaSpecFrom(find(render({ valuesFiles: VARIANTS.keda }), "ScaledObject"));
    assert.deepEqual([keda.minReplicas, keda.maxReplicas, keda.target], [1, 6, 20], "KEDA's HPA starts at 1; 0 is KEDA's activation");
    assert.deepEqual(keda.scaleDown, spec.scaleDown);
  });

  it("scales up at once, as fast as the policies allow: 1 → 5 (Pods +4 beats 100%) → 6 (max)", () => {
    const hpa = new HpaModel(lagHpa());
    const a = hpa.sync(0, 1, 1000);
    assert.deepEqual([a.raw, a.desired], [125, 5]);
    const b = hpa.sync(15, 5, 1000);
    assert.deepEqual([b.raw, b.desired], [125, 6]);
    const c = hpa.sync(30, 6, 1000);
    assert.equal(c.desired, 6, "never above maxReplicas");
  });

  it("within a 15 s period the policies count the replicas already added", () => {
    const hpa = new HpaModel(lagHpa());
    assert.equal(hpa.sync(0, 2, 1000).desired, 6, "2 + 4 pods");
    const spec = { ...lagHpa(), maxReplicas: 20 };
    const big = new HpaModel(spec);
    assert.equal(big.sync(0, 2, 1000).desired, 6, "max(2 × 2, 2 + 4)");
    assert.equal(big.sync(10, 6, 1000).desired, 6, "the period that began at 2 replicas is spent");
    assert.equal(big.sync(15, 6, 1000).desired, 12, "a new period: max(6 × 2, 6 + 4)");
  });

  it("holds the workers for the 5-minute window after the last high recommendation, then sheds one a minute", () => {
    const hpa = new HpaModel(lagHpa());
    assert.equal(hpa.sync(0, 6, 100).desired, 6);
    const seen: Array<[number, number]> = [];
    let current = 6;
    for (let t = 15; t <= 660; t += 15) {
      const d = hpa.sync(t, current, 0);
      if (d.desired !== current) seen.push([t, d.desired]);
      current = d.desired;
    }
    assert.deepEqual(seen, [
      [300, 5],
      [360, 4],
      [420, 3],
      [480, 2],
      [540, 1],
    ]);
  });

  it("a new HPA does not scale down at once (its window starts with the current replicas)", () => {
    const hpa = new HpaModel(lagHpa());
    assert.equal(hpa.sync(0, 4, 0).desired, 4);
    assert.equal(hpa.sync(290, 4, 0).desired, 4);
    assert.equal(hpa.sync(301, 4, 0).desired, 3);
  });

  it("stays within min and max whatever the metric says, and a disabled policy stops that direction", () => {
    const spec = lagHpa();
    const hpa = new HpaModel(spec);
    assert.equal(hpa.sync(0, 9, 0).desired, 6, "above max: back to max");
    assert.equal(new HpaModel(spec).sync(0, 0, 100).desired, 0, "0 replicas: scaling disabled");
    const frozen = new HpaModel({ ...spec, scaleUp: { ...spec.scaleUp, selectPolicy: "Disabled" } });
    assert.equal(frozen.sync(0, 2, 1000).desired, 2);
  });
});
