package soak

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/predict"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

var (
	lane  = state.Lane{FlowSchema: "bulkhead-rollout-obs.agent", PriorityLevel: "bulkhead-rollout-obs.agent"}
	start = time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)
)

func reading(endSec int, flows ...controlplane.FlowLoad) controlplane.Reading {
	to := start.Add(time.Duration(endSec) * time.Second)
	return controlplane.Reading{
		Window: controlplane.Window{From: to.Add(-5 * time.Second), To: to, Seconds: 5},
		Load:   controlplane.Load{Flows: flows},
	}
}

func TestIntervalSumsTheLanesFlowsAndReadsTheServers(t *testing.T) {
	prev := reading(20, controlplane.FlowLoad{FlowSchema: lane.FlowSchema, PriorityLevel: lane.PriorityLevel, InQueue: 4})
	cur := reading(25,
		controlplane.FlowLoad{FlowSchema: lane.FlowSchema, PriorityLevel: lane.PriorityLevel, DispatchedPerSecond: 10, WatchesPerSecond: 1,
			RejectedPerSecond: 2, SeatSecondsPerSecond: 1.5, ExecutionSecondsPerSecond: 0.3, InQueue: 9},
		// During a rollback the squeezed lane is the same schema: it still counts.
		controlplane.FlowLoad{FlowSchema: lane.FlowSchema, PriorityLevel: "other", DispatchedPerSecond: 1, SeatSecondsPerSecond: 0.5, ExecutionSecondsPerSecond: 0.1, InQueue: 1},
		controlplane.FlowLoad{FlowSchema: "service-accounts", PriorityLevel: "workload-low", DispatchedPerSecond: 500, SeatSecondsPerSecond: 40},
	)
	cur.Resources = controlplane.Resources{CPUCores: 0.7, CPUCapacityCores: 2, ResidentBytes: 9e8, Missing: []string{"memory limit"}}
	got := IntervalOf(&prev, cur, lane, start)
	want := check.Interval{End: 25 * time.Second, Span: 5 * time.Second, Dispatched: 11, Watches: 1, Rejected: 2,
		SeatSeconds: 2, Executing: 0.4, QueuedAtStart: 4, QueuedAtEnd: 10,
		ServerCPU: 0.7, CPUKnown: true, ServerMemory: 9e8, MemoryKnown: true}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("IntervalOf = %+v\nwant %+v", got, want)
	}
	if first := IntervalOf(nil, cur, lane, start); first.QueuedAtStart != first.QueuedAtEnd {
		t.Fatalf("the first interval has no queue history; it must not invent growth: %+v", first)
	}
	cur.Resources.Missing = []string{"cpu", "memory"}
	if blind := IntervalOf(&prev, cur, lane, start); blind.CPUKnown || blind.MemoryKnown {
		t.Fatalf("a server whose metrics lack CPU and memory must not read as idle: %+v", blind)
	}
}

func TestOtherFlowsComparesWithBeforeTheRollout(t *testing.T) {
	before := reading(0,
		controlplane.FlowLoad{FlowSchema: "service-accounts", PriorityLevel: "workload-low", RejectedPerSecond: 0.5, Wait: controlplane.Quantile{Count: 100, P99Seconds: 0.01}})
	window := reading(60,
		controlplane.FlowLoad{FlowSchema: lane.FlowSchema, PriorityLevel: lane.PriorityLevel, RejectedPerSecond: 50},
		controlplane.FlowLoad{FlowSchema: "service-accounts", PriorityLevel: "workload-low", RejectedPerSecond: 3, Wait: controlplane.Quantile{Count: 100, P99Seconds: 0.9}},
		controlplane.FlowLoad{FlowSchema: "global-default", PriorityLevel: "global-default", RejectedPerSecond: 1},
		// The DaemonSet's own compartment, where its old agents run during an update.
		controlplane.FlowLoad{FlowSchema: "bulkhead-compartment-ns.agent", PriorityLevel: "bulkhead-compartment-ns.agent", RejectedPerSecond: 2})
	got := OtherFlows(window, before, lane, "bulkhead-compartment-ns.agent")
	want := []check.Flow{
		{FlowSchema: "service-accounts", PriorityLevel: "workload-low", RejectedPerSec: 3, BaselineRejectedPerSec: 0.5,
			WaitP99: 900 * time.Millisecond, BaselineWaitP99: 10 * time.Millisecond},
		{FlowSchema: "global-default", PriorityLevel: "global-default", RejectedPerSec: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("OtherFlows = %+v\nwant %+v", got, want)
	}
}

func TestSLIsKeepThoseWithAnObjective(t *testing.T) {
	window := reading(60)
	window.SLIs = []controlplane.SLI{
		{Verb: "GET", Scope: "resource", Latency: controlplane.Quantile{Count: 900, P99Seconds: 0.05}, SLOSeconds: 1},
		{Verb: "WATCH", Scope: "cluster", Latency: controlplane.Quantile{Count: 3, P99Seconds: 0.001}},
		{Verb: "LIST", Scope: "cluster", Latency: controlplane.Quantile{Count: 40, P99Seconds: 14}, SLOSeconds: 30},
	}
	want := []check.SLI{
		{Verb: "GET", Scope: "resource", P99: 50 * time.Millisecond, SLO: time.Second, Requests: 900},
		{Verb: "LIST", Scope: "cluster", P99: 14 * time.Second, SLO: 30 * time.Second, Requests: 40},
	}
	if got := SLIs(window); !reflect.DeepEqual(got, want) {
		t.Fatalf("SLIs = %+v\nwant %+v", got, want)
	}
}

func TestTheBaselineSurvivesTheAnnotation(t *testing.T) {
	before := reading(0,
		controlplane.FlowLoad{FlowSchema: "service-accounts", PriorityLevel: "workload-low", RejectedPerSecond: 0.5, Wait: controlplane.Quantile{Count: 9, P99Seconds: 0.25}},
		controlplane.FlowLoad{FlowSchema: lane.FlowSchema, PriorityLevel: lane.PriorityLevel, RejectedPerSecond: 9})
	window := reading(60, controlplane.FlowLoad{FlowSchema: "service-accounts", PriorityLevel: "workload-low", RejectedPerSecond: 3, Wait: controlplane.Quantile{Count: 100, P99Seconds: 0.9}})
	direct := OtherFlows(window, before, lane)
	restored := OtherFlows(window, BeforeReading(Baseline(before, lane)), lane)
	if !reflect.DeepEqual(direct, restored) {
		t.Fatalf("judged against the persisted baseline:\n%+v\nagainst the reading:\n%+v", restored, direct)
	}
	if b := Baseline(before, lane); len(b) != 1 || b[0].FlowSchema != "service-accounts" {
		t.Fatalf("the lane itself is no baseline: %+v", b)
	}
}

func TestRecordKeepsEachResourcesMeasurementPredictionAndTheHeadline(t *testing.T) {
	d := analyze.Decision{
		Verdict:  analyze.Halt,
		Headline: "wave 1: 2 agents use 0.0500 cores; 200 agents would need 5.00 cores … — halting",
		Checks: []check.Result{
			{Check: "cpu", Measurement: predict.Measurement{Steady: predict.Estimate{Mean: 0.05, SE: 0.005, Samples: 9}, BurstPeakPerAgent: 0.1},
				Prediction: &predict.Prediction{Agents: 200, Total: predict.Estimate{Mean: 5, SE: 0.5}}, Utilization: 0.08},
			{Check: "seats", Measurement: predict.Measurement{Steady: predict.Estimate{Mean: 0.44, SE: 0.02, Samples: 9}}},
			{Check: "slo"},
		},
		MaxNextWave: -1,
	}
	at := start.Add(time.Minute)
	rec := Record(d, check.Agents{Desired: 2, Ready: 2}, at)
	want := state.WaveRecord{New: 2, Headline: d.Headline, At: at, Utilization: 0.08, Resources: map[check.Resource]check.Measured{
		check.CPU: {Steady: predict.Estimate{Mean: 0.05, SE: 0.005, Samples: 9}, BurstPeakPerAgent: 0.1,
			Predicted: &check.Interval95{Mean: 5, Low: 5 - 1.96*0.5, High: 5 + 1.96*0.5}},
		check.Seats: {Steady: predict.Estimate{Mean: 0.44, SE: 0.02, Samples: 9}},
	}}
	if !reflect.DeepEqual(rec, want) {
		t.Fatalf("Record = %+v\nwant     %+v", rec, want)
	}
}

func TestTheBaselineLeavesTheCPUReferenceAndWhatTheServersUse(t *testing.T) {
	ivs := []check.Interval{
		{End: 5 * time.Second, Span: 5 * time.Second, ServerCPU: 0.1, CPUKnown: true, ServerMemory: 700 << 20, MemoryKnown: true},
		{End: 10 * time.Second, Span: 5 * time.Second, ServerCPU: 0.2, CPUKnown: true, ServerMemory: 900 << 20, MemoryKnown: true},
		{End: 15 * time.Second, Span: 5 * time.Second, ServerCPU: 0.15, ServerMemory: 800 << 20, MemoryKnown: true},
	}
	lane := predict.Estimate{Mean: 0.02, SE: 0.001, Samples: 3}
	d := analyze.Decision{Checks: []check.Result{{Check: "cpu", Measurement: predict.Measurement{Steady: lane}}}}
	ref := ReferenceOf(ivs, d)
	if ref.ServerCPU.Mean != 0.15 || ref.ServerCPU.Samples != 2 || ref.LaneCPU != lane {
		t.Fatalf("reference %+v: want the servers' 0.15 cores over the two intervals that read CPU, and the lane's own", ref)
	}
	limits := check.DefaultBudget.Limits(check.Capacity{CPU: 2, Memory: 1 << 30, Seats: 600})
	got := WithUse(limits, ivs, ref)
	if cpu := got[check.CPU]; math.Abs(cpu.Used-0.13) > 1e-12 || cpu.Value != 0.5 {
		t.Fatalf("CPU limit %+v: the servers used 0.13 cores besides the DaemonSet, 0.5 (25%% of 2) is still below 80%% of 2 less that", cpu)
	}
	if mem := got[check.Memory]; mem.Used != 800<<20 || math.Abs(mem.Value-(0.8*(1<<30)-800<<20)) > 1 {
		t.Fatalf("memory limit %+v: 800 MiB already used, so the headroom below 80%% of 1 GiB, not 25%%, is the limit", mem)
	}
}

// A replica that cannot be read leaves its intervals out, and the soak says so: counting it as
// idle would understate the load, deciding without it could miss the replica the agents load.
func TestIntervalsWithAnUnreachableReplicaAreLeftOutAndSaid(t *testing.T) {
	m := &Meter{}
	lane := state.Lane{FlowSchema: "l", PriorityLevel: "l"}
	st := state.State{ID: "r", Wave: 1, SoakStarted: start, Lane: lane}
	tr := NewTracker(st, m)
	at := func(sec int, reachable bool) controlplane.Reading {
		r := reading(sec, controlplane.FlowLoad{FlowSchema: "l", PriorityLevel: "l", DispatchedPerSecond: 1})
		r.Replicas = []controlplane.ReplicaStatus{{Replica: "10.0.0.1:6443", State: controlplane.ReplicaOK}, {Replica: "10.0.0.2:6443", State: controlplane.ReplicaOK}}
		if !reachable {
			r.Replicas[1] = controlplane.ReplicaStatus{Replica: "10.0.0.2:6443", State: controlplane.ReplicaUnreachable, Error: "connection refused"}
		}
		return r
	}
	for i, reachable := range []bool{true, false, false, true} {
		r := at(5*(i+1), reachable)
		m.publish(controlplane.Snapshot{}, &r, time.Hour)
	}
	tr.Observe(m, lane)
	if n := len(tr.Intervals()); n != 2 {
		t.Fatalf("%d intervals kept, want the 2 every replica answered", n)
	}
	o := tr.Observations(st, check.Agents{}, controlplane.Snapshot{}, controlplane.Reading{}, start.Add(20*time.Second))
	if len(o.Notes) != 1 || !strings.Contains(o.Notes[0], "API server 10.0.0.2:6443 could not be read afresh in 2 scrape intervals: they are left out, not counted as idle") {
		t.Fatalf("notes %q", o.Notes)
	}
}
