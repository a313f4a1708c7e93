package check

import (
	"math"
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/predict"
)

// The estimate of the lane's CPU from what APF measures of its requests, per second:
//
//	CPU ≈ Kappa × execution-seconds / Slowdown(ρ) + PerRequestCPU × requests dispatched
//
// Kappa is the CPU a request burns per second it executes on an idle server: one goroutine
// serialising (and compressing) a response keeps about one core busy. On a server whose CPU is
// busy a fraction ρ of the time, the same request takes 1/(1 − ρ) as long for the same CPU (the
// processor-sharing slowdown seats are rescaled with), so execution time is deflated by the
// servers' utilisation in the interval. PerRequestCPU is what every request costs outside APF's
// execution window — TLS, HTTP/2 framing, authentication and authorisation (impersonation
// included), which run before APF dispatches it. Measured in the lab (rollout/README.md,
// BenchmarkCostPerAgent): LISTs of 4,000 pods from the watch cache burn what they execute once
// deflated (217 ms of CPU for 265 ms at ρ = 0.17, 249 ± 80 ms for 250 ms at ρ = 0.08);
// per-node LISTs from the cache (resourceVersion 0) cost 4.0 ± 0.4 ms of CPU for 1.9 ms of
// deflated execution at 200 agents and 4.2 ± 1.4 ms for 2.4 ms at 50: the gap, 1.8–2.1 ms,
// is PerRequestCPU. Requests that wait while they execute — a consistent read waits for etcd's
// revision, 20 ms for 5 ms of CPU — are overstated: the estimate errs towards halting, and the
// CPU difference corrects it once a wave is large enough to show. KappaSE and PerRequestCPUSE
// are the relative uncertainties that weigh the estimate against the difference.
const (
	Kappa           = 1.0
	KappaSE         = 0.3
	PerRequestCPU   = 0.002
	PerRequestCPUSE = 0.4
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
		byExecution = append(byExecution, iv.sample(executionCPU(iv)))
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
	m.Steady = combine(m.Steady, math.Hypot(m.Steady.SE, modelSE(w.Intervals, steadyFrom, m.Steady.Mean)), d, d.SE)
	return m
}

// executionCPU is an interval's CPU estimated from the lane's execution time and requests.
func executionCPU(iv Interval) float64 { return LaneCPU(iv.Executing, iv.Dispatched, iv.Utilization()) }

// LaneCPU is the CPU, in cores, of requests that executed executing seconds a second and were
// dispatched at dispatched a second on servers whose CPU was busy a fraction utilization of the
// time (0 when unknown), as APF's counters price it.
func LaneCPU(executing, dispatched, utilization float64) float64 {
	return executingCPU(executing, utilization) + PerRequestCPU*dispatched
}

// executingCPU is the part of LaneCPU spent while the requests executed: their execution time
// deflated by the servers' slowdown.
func executingCPU(executing, utilization float64) float64 {
	return Kappa * executing / predict.Slowdown(utilization)
}

// modelSE is the uncertainty of the estimate from execution time that comes from its constants,
// for a steady estimate of mean: each part's share of it times its constant's uncertainty.
func modelSE(intervals []Interval, steadyFrom time.Duration, mean float64) float64 {
	var executing, requests float64
	for _, iv := range intervals {
		if iv.End-iv.Span >= steadyFrom {
			executing += executingCPU(iv.Executing, iv.Utilization()) * iv.Span.Seconds()
			requests += PerRequestCPU * iv.Dispatched * iv.Span.Seconds()
		}
	}
	if executing+requests == 0 {
		return 0
	}
	share := executing / (executing + requests)
	return mean * math.Hypot(share*KappaSE, (1-share)*PerRequestCPUSE)
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
	return predict.PerRequest(samplesOf(burst, executionCPU))
}
