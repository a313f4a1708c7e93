package check

import (
	"math"

	"github.com/bulkhead-dev/bulkhead/rollout/predict"
)

// Kappa is the CPU a request burns per second it executes, KappaSE its uncertainty: the prior of
// the estimate from execution time (doc.go). Measured in the lab on a quiet server, per request
// kind: LISTs of 4,000 pods served from the watch cache 0.8–1.2 (serialising and compressing
// keep a core busy, garbage collection adds to it), a per-node LIST with a field selector 0.4
// (a consistent read waits for etcd's revision, then filters an index).
const (
	Kappa   = 0.8
	KappaSE = 0.4
)

// cpuResolution is the smallest CPU difference the servers' counter tells apart in one scrape
// interval: process_cpu_seconds_total counts in 10 ms ticks, 0.002 cores over 5 s. APF's
// execution time has no such grain.
const (
	cpuResolution       = 0.002
	executionResolution = 1e-5
)

var cpuMeter = meter{resource: CPU, measure: measureCPU, perRequest: cpuPerRequest}

// measureCPU is the lane's CPU in a wave: the estimate from its execution time and the one from
// the servers' CPU difference, combined by their precision. The weights count κ's uncertainty,
// so the difference takes over where it has signal (a large wave; a busy server, where
// execution time overstates CPU); the interval the decision rests on is the data's own (given
// κ), so soaking longer does not wait for an uncertainty that no amount of soaking removes:
// later, larger waves do. The burst is the execution time's: it is what the agents' own
// requests did.
func measureCPU(w Wave) predict.Measurement {
	steadyFrom, started := w.SteadyFrom(), w.Agents.Started
	var byExecution, byDifference []predict.Sample
	ref := w.Reference
	for _, iv := range w.Intervals {
		byExecution = append(byExecution, iv.sample(Kappa*iv.Executing))
		if iv.CPUKnown && ref.ServerCPU.Samples > 0 {
			byDifference = append(byDifference, iv.sample(iv.ServerCPU-ref.ServerCPU.Mean+ref.LaneCPU.Mean))
		}
	}
	m := predict.Measure(byExecution, steadyFrom, started, executionResolution)
	if len(byDifference) == 0 || m.Steady.Samples == 0 {
		return m
	}
	d := predict.Measure(byDifference, steadyFrom, started, cpuResolution).Steady
	if d.Samples == 0 {
		return m
	}
	d.SE = math.Sqrt(d.SE*d.SE + ref.ServerCPU.SE*ref.ServerCPU.SE + ref.LaneCPU.SE*ref.LaneCPU.SE)
	m.Steady = combine(m.Steady, math.Hypot(m.Steady.SE, KappaSE/Kappa*m.Steady.Mean), d, d.SE)
	return m
}

// combine is the mean of two estimates of one quantity weighted by 1/weightSE²; its error is
// what the estimates' own errors make of that mean.
func combine(a predict.Estimate, weightSEa float64, b predict.Estimate, weightSEb float64) predict.Estimate {
	if math.IsInf(b.SE, 1) || weightSEb <= 0 {
		return a
	}
	if math.IsInf(a.SE, 1) || weightSEa <= 0 {
		return b
	}
	wa, wb := 1/(weightSEa*weightSEa), 1/(weightSEb*weightSEb)
	fa, fb := wa/(wa+wb), wb/(wa+wb)
	return predict.Estimate{Mean: fa*a.Mean + fb*b.Mean, SE: math.Sqrt(fa*fa*a.SE*a.SE + fb*fb*b.SE*b.SE), Samples: max(a.Samples, b.Samples)}
}

// cpuPerRequest is the CPU-seconds of one of the lane's requests at start-up.
func cpuPerRequest(burst []Interval) float64 {
	return predict.PerRequest(samplesOf(burst, func(iv Interval) float64 { return Kappa * iv.Executing }))
}
