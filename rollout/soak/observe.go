package soak

import (
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/predict"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// LaneSample maps one scrape interval's Reading onto the lane: the lane's flows (its
// FlowSchema, whatever level it points at) summed. prev is the Reading of the interval before,
// whose end-of-window queue is this interval's start; nil for the first interval, which then
// assumes the queue did not change. start is when the wave (or the soak) began.
func LaneSample(prev *controlplane.Reading, cur controlplane.Reading, lane state.Lane, start time.Time) predict.Sample {
	dispatched, rejected, seats, queued := laneLoad(cur, lane)
	queuedBefore := queued
	if prev != nil {
		_, _, _, queuedBefore = laneLoad(*prev, lane)
	}
	return predict.Sample{
		End:              cur.Window.To.Sub(start),
		Span:             time.Duration(cur.Window.Seconds * float64(time.Second)),
		DispatchedPerSec: dispatched,
		RejectedPerSec:   rejected,
		ExecutingSeats:   seats,
		QueuedAtStart:    queuedBefore,
		QueuedAtEnd:      queued,
	}
}

func laneLoad(r controlplane.Reading, lane state.Lane) (dispatched, rejected, seats, queued float64) {
	for _, f := range r.Flows {
		if f.FlowSchema != lane.FlowSchema {
			continue
		}
		dispatched += f.DispatchedPerSecond
		rejected += f.RejectedPerSecond
		seats += f.SeatSecondsPerSecond
		queued += f.InQueue
	}
	return dispatched, rejected, seats, queued
}

// OtherFlows lists every flow but the lane's over a soak window, next to the same flow's
// figures in a Reading from before the rollout (a flow absent then had no rejections and no
// wait).
func OtherFlows(window, before controlplane.Reading, lane state.Lane) []analyze.Flow {
	type key struct{ fs, pl string }
	base := map[key]controlplane.FlowLoad{}
	for _, f := range before.Flows {
		base[key{f.FlowSchema, f.PriorityLevel}] = f
	}
	var out []analyze.Flow
	for _, f := range window.Flows {
		if f.FlowSchema == lane.FlowSchema {
			continue
		}
		b := base[key{f.FlowSchema, f.PriorityLevel}]
		out = append(out, analyze.Flow{
			FlowSchema: f.FlowSchema, PriorityLevel: f.PriorityLevel,
			RejectedPerSec: f.RejectedPerSecond, BaselineRejectedPerSec: b.RejectedPerSecond,
			WaitP99: seconds(f.Wait.P99Seconds), BaselineWaitP99: seconds(b.Wait.P99Seconds),
		})
	}
	return out
}

// SLIs are the window's latency indicators that have an SLO.
func SLIs(window controlplane.Reading) []analyze.SLI {
	var out []analyze.SLI
	for _, s := range window.SLIs {
		if s.SLOSeconds <= 0 {
			continue
		}
		out = append(out, analyze.SLI{Verb: s.Verb, Scope: s.Scope,
			P99: seconds(s.Latency.P99Seconds), SLO: seconds(s.SLOSeconds), Requests: int64(s.Latency.Count)})
	}
	return out
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Baseline keeps what OtherFlows needs from a Reading taken before the rollout, for the state.
func Baseline(before controlplane.Reading, lane state.Lane) []state.FlowBaseline {
	var out []state.FlowBaseline
	for _, f := range before.Flows {
		if f.FlowSchema == lane.FlowSchema {
			continue
		}
		out = append(out, state.FlowBaseline{FlowSchema: f.FlowSchema, PriorityLevel: f.PriorityLevel,
			RejectedPerSec: f.RejectedPerSecond, WaitP99: state.Duration{Duration: seconds(f.Wait.P99Seconds)}})
	}
	return out
}

// BeforeReading turns a persisted baseline back into the Reading OtherFlows compares with.
func BeforeReading(baseline []state.FlowBaseline) controlplane.Reading {
	var r controlplane.Reading
	for _, b := range baseline {
		r.Flows = append(r.Flows, controlplane.FlowLoad{FlowSchema: b.FlowSchema, PriorityLevel: b.PriorityLevel,
			RejectedPerSecond: b.RejectedPerSec, Wait: controlplane.Quantile{P99Seconds: b.WaitP99.Seconds()}})
	}
	return r
}
