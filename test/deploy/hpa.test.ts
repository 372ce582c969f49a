/**
 * The chart's own autoscaling values, read from the rendered HPA and ScaledObject (pure
 * checks). What the HPA controller decides with them is checked against the real
 * kube-controller-manager in k8s-autoscaling.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { find, render, VARIANTS } from "./lib/chart.js";
import { hpaSpecFrom, parseQuantity } from "./lib/hpa.js";

const lagHpa = () => hpaSpecFrom(find(render({ set: { "autoscaling.signal": "lag" } }), "HorizontalPodAutoscaler"));

describe("the chart's autoscaling values", () => {
  it("reads quantities", () => {
    assert.equal(parseQuantity("30"), 30);
    assert.equal(parseQuantity("1500m"), 1.5);
    assert.equal(parseQuantity(8), 8);
  });

  it("bounds, target and behaviour of the rendered HPA and ScaledObject", () => {
    const spec = lagHpa();
    assert.deepEqual([spec.minReplicas, spec.maxReplicas, spec.target], [1, 6, 8]);
    assert.equal(spec.scaleUp.stabilizationWindowSeconds, 0);
    assert.equal(spec.scaleDown.stabilizationWindowSeconds, 300);
    const keda = hpaSpecFrom(find(render({ valuesFiles: VARIANTS.keda }), "ScaledObject"));
    assert.deepEqual([keda.minReplicas, keda.maxReplicas, keda.target], [1, 6, 8], "KEDA's HPA starts at 1; 0 is KEDA's activation");
    assert.deepEqual(keda.scaleDown, spec.scaleDown);
  });
});
