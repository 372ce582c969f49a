import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cgroupCpuLimit, generationThreads, parseCpuMax } from "../../../worker/cpu-quota.js";

describe("threads from the CPU quota", () => {
  it("parses cgroup v2 cpu.max", () => {
    assert.equal(parseCpuMax("max 100000\n"), null);
    assert.equal(parseCpuMax("200000 100000\n"), 2);
    assert.equal(parseCpuMax("150000 100000"), 1.5);
  });

  it("reads cgroup v1 when v2 is absent", () => {
    const files: Record<string, string> = {
      "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "300000\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
    };
    assert.equal(
      cgroupCpuLimit((p) => files[p] ?? null),
      3,
    );
    assert.equal(
      cgroupCpuLimit(() => null),
      null,
    );
  });

  it("uses the quota, not the host's cores, and never less than one thread", () => {
    assert.equal(generationThreads(0, 2, 64), 2, "a 2-CPU pod on a 64-core node gets 2 threads");
    assert.equal(generationThreads(0, 1.5, 64), 1);
    assert.equal(generationThreads(0, 0.5, 64), 1);
    assert.equal(generationThreads(0, null, 8), 8, "no quota: the CPUs we may run on");
    assert.equal(generationThreads(0, 16, 4), 4, "never more than the CPUs available");
    assert.equal(generationThreads(3, 1, 64), 3, "an explicit setting wins");
  });
});
