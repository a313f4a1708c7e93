package check

import (
	"math"
	"testing"
)

// The same requests burn the same CPU however busy the servers are; only their wall time, which
// APF integrates, grows. The estimate from APF's counters must come out the same.
func TestExecutionTimeOnABusyServerIsPricedAtItsCPU(t *testing.T) {
	const requests, cpuWhileExecuting = 40.0, 0.08 // per second: 2 ms of CPU each while executing
	twoCores := []ReplicaUse{{Name: "a", Capacity: 1}, {Name: "b", Capacity: 1}}
	for _, tc := range []struct {
		name      string
		interval  Interval
		wantCores float64
	}{
		{"idle servers", Interval{Dispatched: requests, Executing: cpuWhileExecuting, ServerCPU: 0, CPUKnown: true, Replicas: twoCores},
			cpuWhileExecuting + requests*PerRequestCPU},
		{"servers half busy: every request takes twice as long", Interval{Dispatched: requests, Executing: 2 * cpuWhileExecuting, ServerCPU: 1, CPUKnown: true, Replicas: twoCores},
			cpuWhileExecuting + requests*PerRequestCPU},
		{"servers' CPU unknown: execution time taken as it is", Interval{Dispatched: requests, Executing: 2 * cpuWhileExecuting, ServerCPU: 1, Replicas: twoCores},
			2*cpuWhileExecuting + requests*PerRequestCPU},
		{"capacity unknown: execution time taken as it is", Interval{Dispatched: requests, Executing: 2 * cpuWhileExecuting, ServerCPU: 1, CPUKnown: true},
			2*cpuWhileExecuting + requests*PerRequestCPU},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := executionCPU(tc.interval); math.Abs(got-tc.wantCores) > 1e-9 {
				t.Fatalf("estimated %.4f cores, want %.4f (utilisation %.2f)", got, tc.wantCores, tc.interval.Utilization())
			}
		})
	}
}
