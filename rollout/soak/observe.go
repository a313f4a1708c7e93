package soak

import (
	"slices"
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// IntervalOf maps one scrape interval's Reading onto the lane and the servers: the lane's flows
// (its FlowSchema, whatever level it points at) summed, and the servers' own CPU and memory.
// prev is the Reading of the interval before, whose end-of-window queue is this interval's
// start; nil for the first interval, which then assumes the queue did not change. start is when
// the wave (or the soak) began.
func IntervalOf(prev *controlplane.Reading, cur controlplane.Reading, lane state.Lane, start time.Time) check.Interval {
	iv := laneLoad(cur, lane)
	iv.QueuedAtStart = iv.QueuedAtEnd
	if prev != nil {
		iv.QueuedAtStart = laneLoad(*prev, lane).QueuedAtEnd
	}
	iv.End = cur.Window.To.Sub(start)
	iv.Span = time.Duration(cur.Window.Seconds * float64(time.Second))
	res := cur.Resources
	iv.ServerCPU, iv.CPUKnown = res.CPUCores, !slices.Contains(res.Missing, "cpu")
	iv.ServerMemory, iv.MemoryKnown = res.ResidentBytes, !slices.Contains(res.Missing, "memory")
	for _, rep := range cur.Replicas {
		if rep.Load == nil || (rep.State != controlplane.ReplicaOK && rep.State != controlplane.ReplicaRestarted) ||
			slices.Contains(rep.Load.Resources.Missing, "cpu") {
			continue
		}
		own := laneLoad(controlplane.Reading{Load: *rep.Load}, lane)
		use := check.ReplicaUse{Name: rep.Replica, CPU: rep.Load.Resources.CPUCores, Capacity: rep.Load.Resources.CPUCapacityCores}
		use.LaneCPU = check.LaneCPU(own.Executing, own.Dispatched, use.Utilization())
		iv.Replicas = append(iv.Replicas, use)
	}
	return iv
}

func laneLoad(r controlplane.Reading, lane state.Lane) check.Interval {
	var iv check.Interval
	for _, f := range r.Flows {
		if f.FlowSchema != lane.FlowSchema {
			continue
		}
		iv.Dispatched += f.DispatchedPerSecond
		iv.Watches += f.WatchesPerSecond
		iv.Rejected += f.RejectedPerSecond
		iv.SeatSeconds += f.SeatSecondsPerSecond
		iv.Executing += f.ExecutionSecondsPerSecond
		iv.QueuedAtEnd += f.InQueue
	}
	return iv
}

// OtherFlows lists every flow but the lane's and the DaemonSet's own (own: its standing
// compartment, where its old agents run during an update — their load is the rollout's, not
// collateral damage) over a soak window, next to the same flow's figures in a Reading from
// before the rollout (a flow absent then had no rejections and no wait).
func OtherFlows(window, before controlplane.Reading, lane state.Lane, own ...string) []check.Flow {
	type key struct{ fs, pl string }
	base := map[key]controlplane.FlowLoad{}
	for _, f := range before.Flows {
		base[key{f.FlowSchema, f.PriorityLevel}] = f
	}
	var out []check.Flow
	for _, f := range window.Flows {
		if f.FlowSchema == lane.FlowSchema || slices.Contains(own, f.FlowSchema) {
			continue
		}
		b := base[key{f.FlowSchema, f.PriorityLevel}]
		out = append(out, check.Flow{
			FlowSchema: f.FlowSchema, PriorityLevel: f.PriorityLevel,
			RejectedPerSec: f.RejectedPerSecond, BaselineRejectedPerSec: b.RejectedPerSecond,
			WaitP99: seconds(f.Wait.P99Seconds), BaselineWaitP99: seconds(b.Wait.P99Seconds),
		})
	}
	return out
}

// SLIs are the window's latency indicators that have an SLO.
func SLIs(window controlplane.Reading) []check.SLI {
	var out []check.SLI
	for _, s := range window.SLIs {
		if s.SLOSeconds <= 0 {
			continue
		}
		out = append(out, check.SLI{Verb: s.Verb, Scope: s.Scope,
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
