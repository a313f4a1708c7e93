package soak

import (
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/predict"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Record is what the state keeps of a soak's final decision: each resource's steady measurement
// for the regression, the prediction and the headline for the report.
func Record(d analyze.Decision, agents check.Agents, at time.Time) state.WaveRecord {
	rec := state.WaveRecord{Old: agents.Old, New: agents.Desired, MaxNextWave: max(d.MaxNextWave, 0),
		Headline: d.Headline, At: at, Resources: map[check.Resource]check.Measured{}}
	for _, r := range check.Resources {
		if c, ok := d.Resource(r); ok {
			rec.Resources[r] = c.Record()
			rec.Utilization = max(rec.Utilization, c.Utilization)
		}
	}
	return rec
}

// ReferenceOf is what a baseline leaves for the waves' CPU difference: the servers' mean CPU over
// the baseline, and the lane's own CPU then (the current version's, for an update; nothing, for
// a new DaemonSet).
func ReferenceOf(intervals []check.Interval, d analyze.Decision) check.Reference {
	var ref check.Reference
	var samples []predict.Sample
	for _, iv := range intervals {
		if iv.CPUKnown {
			samples = append(samples, predict.Sample{End: iv.End, Span: iv.Span, Used: iv.ServerCPU})
		}
	}
	ref.ServerCPU = predict.Measure(samples, 0, 0, 0.001).Steady
	if c, ok := d.Resource(check.CPU); ok {
		ref.LaneCPU = c.Measurement.Steady
	}
	return ref
}

// WithUse recomputes the limits with what the servers used during the baseline, the DaemonSet's
// own current version excepted (the budget is for the version being rolled out, which replaces
// it): CPU from the reference, memory from the servers' resident memory.
func WithUse(limits map[check.Resource]check.Limit, intervals []check.Interval, ref check.Reference) map[check.Resource]check.Limit {
	out := map[check.Resource]check.Limit{}
	var memory, seconds float64
	for _, iv := range intervals {
		if iv.MemoryKnown {
			memory += iv.ServerMemory * iv.Span.Seconds()
			seconds += iv.Span.Seconds()
		}
	}
	for r, l := range limits {
		switch {
		case r == check.CPU && ref.ServerCPU.Samples > 0:
			l = l.WithUsed(max(0, ref.ServerCPU.Mean-ref.LaneCPU.Mean))
		case r == check.Memory && seconds > 0:
			l = l.WithUsed(memory / seconds)
		}
		out[r] = l
	}
	return out
}
