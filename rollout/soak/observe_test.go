package soak

import (
	"reflect"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
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

func TestLaneSampleSumsTheLanesFlowsOnly(t *testing.T) {
	prev := reading(20, controlplane.FlowLoad{FlowSchema: lane.FlowSchema, PriorityLevel: lane.PriorityLevel, InQueue: 4})
	cur := reading(25,
		controlplane.FlowLoad{FlowSchema: lane.FlowSchema, PriorityLevel: lane.PriorityLevel, DispatchedPerSecond: 10, RejectedPerSecond: 2, SeatSecondsPerSecond: 1.5, InQueue: 9},
		// During a rollback the squeezed lane is the same schema: it still counts.
		controlplane.FlowLoad{FlowSchema: lane.FlowSchema, PriorityLevel: "other", DispatchedPerSecond: 1, SeatSecondsPerSecond: 0.5, InQueue: 1},
		controlplane.FlowLoad{FlowSchema: "service-accounts", PriorityLevel: "workload-low", DispatchedPerSecond: 500, SeatSecondsPerSecond: 40},
	)
	got := LaneSample(&prev, cur, lane, start)
	want := predict.Sample{End: 25 * time.Second, Span: 5 * time.Second, DispatchedPerSec: 11, RejectedPerSec: 2,
		ExecutingSeats: 2, QueuedAtStart: 4, QueuedAtEnd: 10}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("LaneSample = %+v\nwant %+v", got, want)
	}
	if first := LaneSample(nil, cur, lane, start); first.QueuedAtStart != first.QueuedAtEnd {
		t.Fatalf("the first interval has no queue history; it must not invent growth: %+v", first)
	}
}

func TestOtherFlowsComparesWithBeforeTheRollout(t *testing.T) {
	before := reading(0,
		controlplane.FlowLoad{FlowSchema: "service-accounts", PriorityLevel: "workload-low", RejectedPerSecond: 0.5, Wait: controlplane.Quantile{Count: 100, P99Seconds: 0.01}})
	window := reading(60,
		controlplane.FlowLoad{FlowSchema: lane.FlowSchema, PriorityLevel: lane.PriorityLevel, RejectedPerSecond: 50},
		controlplane.FlowLoad{FlowSchema: "service-accounts", PriorityLevel: "workload-low", RejectedPerSecond: 3, Wait: controlplane.Quantile{Count: 100, P99Seconds: 0.9}},
		controlplane.FlowLoad{FlowSchema: "global-default", PriorityLevel: "global-default", RejectedPerSecond: 1})
	got := OtherFlows(window, before, lane)
	want := []analyze.Flow{
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
	want := []analyze.SLI{
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

func TestRecordKeepsTheMeasurementThePredictionAndTheHeadline(t *testing.T) {
	d := analyze.Decision{
		Verdict:     analyze.Halt,
		Headline:    "wave 1: 2 agents use 0.6 seats steady; 200 agents would need 62 seats (95%: 23–101) against a budget of 59 — halting",
		Measurement: predict.Measurement{Steady: predict.Estimate{Mean: 0.62, SE: 0.1, Samples: 5}, BurstPeakPerAgent: 0.4},
		Prediction:  &predict.Prediction{Agents: 200, Seats: predict.Estimate{Mean: 62, SE: 20, Samples: 5}},
		MaxNextWave: -1,
	}
	at := start.Add(time.Minute)
	rec := Record(d, analyze.Agents{Desired: 2, Ready: 2, Old: 0}, at)
	want := state.WaveRecord{New: 2, Seats: 0.62, SE: 0.1, Samples: 5, BurstPeakPerAgent: 0.4, Headline: d.Headline, At: at,
		Predicted: 62, PredictedLow: d.Prediction.Seats.Low(), PredictedHigh: d.Prediction.Seats.High()}
	if !reflect.DeepEqual(rec, want) {
		t.Fatalf("Record = %+v\nwant     %+v", rec, want)
	}
	if rec.PredictedLow >= 62 || rec.PredictedHigh <= 62 {
		t.Fatalf("interval %v–%v does not surround the estimate", rec.PredictedLow, rec.PredictedHigh)
	}
	if noFit := Record(analyze.Decision{MaxNextWave: -1}, analyze.Agents{}, at); noFit.Predicted != 0 || noFit.MaxNextWave != 0 {
		t.Fatalf("without a prediction: %+v", noFit)
	}
}
