package controlplane

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

const textFormat = "text/plain; version=0.0.4; charset=utf-8"

// apiserverText is a minimal kube-apiserver exposition: one flow (telemetry in workload-low) with
// the given cumulative counters, the limits of two levels and one SLI series.
type apiserverText struct {
	start          float64 // process_start_time_seconds
	dispatched     float64
	rejectedFull   float64
	execSum        float64 // seconds
	execCount      float64
	seatsSum       float64
	seatsCount     float64
	executingSeats float64
	inQueue        float64
	waitBuckets    [3]float64 // cumulative at le=0.005, 0.05, 1
	waitCount      float64
	sliBuckets     [3]float64 // cumulative at le=0.1, 1, 4
	sliCount       float64
	// The process's resources; a zero leaves the metric out, as a managed control plane might.
	cpuSeconds, gomaxprocs, resident, gomemlimit float64
}

func (a apiserverText) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %g\n", a.start)
	fmt.Fprintf(&b, "# TYPE apiserver_flowcontrol_dispatched_requests_total counter\n")
	fmt.Fprintf(&b, "apiserver_flowcontrol_dispatched_requests_total{flow_schema=\"telemetry\",priority_level=\"workload-low\"} %g\n", a.dispatched)
	fmt.Fprintf(&b, "apiserver_flowcontrol_dispatched_requests_total{flow_schema=\"exempt\",priority_level=\"exempt\"} 7\n")
	fmt.Fprintf(&b, "# TYPE apiserver_flowcontrol_rejected_requests_total counter\n")
	fmt.Fprintf(&b, "apiserver_flowcontrol_rejected_requests_total{flow_schema=\"telemetry\",priority_level=\"workload-low\",reason=\"queue-full\"} %g\n", a.rejectedFull)
	fmt.Fprintf(&b, "# TYPE apiserver_flowcontrol_current_executing_seats gauge\n")
	fmt.Fprintf(&b, "apiserver_flowcontrol_current_executing_seats{flow_schema=\"telemetry\",priority_level=\"workload-low\"} %g\n", a.executingSeats)
	fmt.Fprintf(&b, "# TYPE apiserver_flowcontrol_current_inqueue_requests gauge\n")
	fmt.Fprintf(&b, "apiserver_flowcontrol_current_inqueue_requests{flow_schema=\"telemetry\",priority_level=\"workload-low\"} %g\n", a.inQueue)
	fmt.Fprintf(&b, "# TYPE apiserver_flowcontrol_request_execution_seconds histogram\n")
	fmt.Fprintf(&b, "apiserver_flowcontrol_request_execution_seconds_bucket{flow_schema=\"telemetry\",priority_level=\"workload-low\",type=\"regular\",le=\"+Inf\"} %g\n", a.execCount)
	fmt.Fprintf(&b, "apiserver_flowcontrol_request_execution_seconds_sum{flow_schema=\"telemetry\",priority_level=\"workload-low\",type=\"regular\"} %g\n", a.execSum)
	fmt.Fprintf(&b, "apiserver_flowcontrol_request_execution_seconds_count{flow_schema=\"telemetry\",priority_level=\"workload-low\",type=\"regular\"} %g\n", a.execCount)
	fmt.Fprintf(&b, "# TYPE apiserver_flowcontrol_work_estimated_seats histogram\n")
	fmt.Fprintf(&b, "apiserver_flowcontrol_work_estimated_seats_bucket{flow_schema=\"telemetry\",priority_level=\"workload-low\",le=\"+Inf\"} %g\n", a.seatsCount)
	fmt.Fprintf(&b, "apiserver_flowcontrol_work_estimated_seats_sum{flow_schema=\"telemetry\",priority_level=\"workload-low\"} %g\n", a.seatsSum)
	fmt.Fprintf(&b, "apiserver_flowcontrol_work_estimated_seats_count{flow_schema=\"telemetry\",priority_level=\"workload-low\"} %g\n", a.seatsCount)
	fmt.Fprintf(&b, "# TYPE apiserver_flowcontrol_request_wait_duration_seconds histogram\n")
	for i, le := range []string{"0.005", "0.05", "1"} {
		fmt.Fprintf(&b, "apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute=\"true\",flow_schema=\"telemetry\",priority_level=\"workload-low\",le=%q} %g\n", le, a.waitBuckets[i])
	}
	fmt.Fprintf(&b, "apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute=\"true\",flow_schema=\"telemetry\",priority_level=\"workload-low\",le=\"+Inf\"} %g\n", a.waitCount)
	fmt.Fprintf(&b, "apiserver_flowcontrol_request_wait_duration_seconds_sum{execute=\"true\",flow_schema=\"telemetry\",priority_level=\"workload-low\"} 0\n")
	fmt.Fprintf(&b, "apiserver_flowcontrol_request_wait_duration_seconds_count{execute=\"true\",flow_schema=\"telemetry\",priority_level=\"workload-low\"} %g\n", a.waitCount)
	fmt.Fprintf(&b, "# TYPE apiserver_flowcontrol_nominal_limit_seats gauge\n")
	fmt.Fprintf(&b, "apiserver_flowcontrol_nominal_limit_seats{priority_level=\"workload-low\"} 100\napiserver_flowcontrol_nominal_limit_seats{priority_level=\"exempt\"} 0\n")
	fmt.Fprintf(&b, "# TYPE apiserver_flowcontrol_current_limit_seats gauge\n")
	fmt.Fprintf(&b, "apiserver_flowcontrol_current_limit_seats{priority_level=\"workload-low\"} 120\napiserver_flowcontrol_current_limit_seats{priority_level=\"exempt\"} 0\n")
	fmt.Fprintf(&b, "# TYPE apiserver_request_sli_duration_seconds histogram\n")
	for i, le := range []string{"0.1", "1", "4"} {
		fmt.Fprintf(&b, "apiserver_request_sli_duration_seconds_bucket{resource=\"pods\",scope=\"cluster\",verb=\"LIST\",le=%q} %g\n", le, a.sliBuckets[i])
	}
	fmt.Fprintf(&b, "apiserver_request_sli_duration_seconds_bucket{resource=\"pods\",scope=\"cluster\",verb=\"LIST\",le=\"+Inf\"} %g\n", a.sliCount)
	fmt.Fprintf(&b, "apiserver_request_sli_duration_seconds_sum{resource=\"pods\",scope=\"cluster\",verb=\"LIST\"} 0\n")
	fmt.Fprintf(&b, "apiserver_request_sli_duration_seconds_count{resource=\"pods\",scope=\"cluster\",verb=\"LIST\"} %g\n", a.sliCount)
	for _, m := range []struct {
		name, kind string
		value      float64
	}{
		{"process_cpu_seconds_total", "counter", a.cpuSeconds}, {"go_sched_gomaxprocs_threads", "gauge", a.gomaxprocs},
		{"process_resident_memory_bytes", "gauge", a.resident}, {"go_gc_gomemlimit_bytes", "gauge", a.gomemlimit},
	} {
		if m.value != 0 {
			fmt.Fprintf(&b, "# TYPE %s %s\n%s %g\n", m.name, m.kind, m.name, m.value)
		}
	}
	return b.String()
}

var t0 = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

func scraped(t *testing.T, replica string, at time.Time, text apiserverText) ReplicaScrape {
	t.Helper()
	families, err := ParseMetrics([]byte(text.String()), textFormat)
	if err != nil {
		t.Fatalf("parse %s: %v", replica, err)
	}
	return ReplicaScrape{Replica: replica, Taken: at, Families: families}
}

func unreachable(replica string) ReplicaScrape {
	return ReplicaScrape{Replica: replica, Err: errors.New("replica " + replica + ": unreachable: connection refused")}
}

// before and after are 10 s apart: 200 requests dispatched (20/s), 10 rejected (1/s), 40 s of
// execution at 5 seats each (200 seat-seconds, 20 seats on average), 100 waits, 99 of them <= 5 ms.
var (
	before = apiserverText{start: 100, dispatched: 1000, rejectedFull: 5, execSum: 60, execCount: 1000, seatsSum: 1000, seatsCount: 1000,
		waitBuckets: [3]float64{100, 100, 100}, waitCount: 100, sliBuckets: [3]float64{10, 10, 10}, sliCount: 10}
	after = apiserverText{start: 100, dispatched: 1200, rejectedFull: 15, execSum: 100, execCount: 1200, seatsSum: 2000, seatsCount: 1200,
		executingSeats: 15, inQueue: 3, waitBuckets: [3]float64{199, 200, 200}, waitCount: 200, sliBuckets: [3]float64{10, 10, 110}, sliCount: 110}
)

func near(got, want float64) bool { return math.Abs(got-want) <= 1e-9*max(1, math.Abs(want)) }

func flowOf(t *testing.T, load Load, flowSchema string) FlowLoad {
	t.Helper()
	for _, f := range load.Flows {
		if f.FlowSchema == flowSchema {
			return f
		}
	}
	t.Fatalf("flow %s not in %+v", flowSchema, load.Flows)
	return FlowLoad{}
}

func levelOf(t *testing.T, load Load, name string) LevelLoad {
	t.Helper()
	for _, l := range load.PriorityLevels {
		if l.PriorityLevel == name {
			return l
		}
	}
	t.Fatalf("priority level %s not in %+v", name, load.PriorityLevels)
	return LevelLoad{}
}

func TestAnalyzeComputesRatesSeatsAndQuantilesOfOneFlow(t *testing.T) {
	r := Analyze(
		Snapshot{Replicas: []ReplicaScrape{scraped(t, "a:6443", t0, before)}},
		Snapshot{Replicas: []ReplicaScrape{scraped(t, "a:6443", t0.Add(10*time.Second), after)}})

	f := flowOf(t, r.Load, "telemetry")
	checks := []struct {
		name      string
		got, want float64
	}{
		{"dispatched/s", f.DispatchedPerSecond, 20},
		{"rejected/s", f.RejectedPerSecond, 1},
		{"rejected queue-full/s", f.RejectedByReason["queue-full"], 1},
		// Δexecution 40 s × (Δseats 1000 / Δestimates 200 = 5 seats) / 10 s
		{"seat-seconds/s", f.SeatSecondsPerSecond, 20},
		{"execution-seconds/s", f.ExecutionSecondsPerSecond, 4},
		{"average seats", f.AverageSeats, 5},
		{"executing seats", f.ExecutingSeats, 15},
		{"in queue", f.InQueue, 3},
		{"wait count", f.Wait.Count, 100},
		// rank 99 of 100 falls in the first bucket [0, 5 ms] holding 99: its upper bound
		{"wait p99", f.Wait.P99Seconds, 0.005},
		{"window seconds", r.Window.Seconds, 10},
		{"seats executing", r.Seats.Executing, 15},
		{"seats nominal", r.Seats.Nominal, 100},
		{"seats current", r.Seats.Current, 120},
		{"level utilization", levelOf(t, r.Load, "workload-low").Utilization, 20.0 / 120},
	}
	for _, c := range checks {
		if !near(c.got, c.want) {
			t.Errorf("%s = %g, want %g", c.name, c.got, c.want)
		}
	}
	if len(r.SLIs) != 1 {
		t.Fatalf("SLIs = %+v, want one (LIST cluster)", r.SLIs)
	}
	// 100 LISTs in the window, all between 1 s and 4 s: rank 99 interpolates to 1 + 3×99/100.
	sli := r.SLIs[0]
	if sli.Verb != "LIST" || sli.Scope != "cluster" || sli.SLOSeconds != 30 || !near(sli.Latency.P99Seconds, 3.97) || sli.Breached {
		t.Errorf("SLI = %+v, want LIST cluster p99 3.97 s within a 30 s SLO", sli)
	}
	if r.Replicas[0].State != ReplicaOK || !r.Reachable() {
		t.Errorf("replica state %s, want ok", r.Replicas[0].State)
	}
	if own := flowOf(t, *r.Replicas[0].Load, "telemetry"); !reflect.DeepEqual(own, f) {
		t.Errorf("the only replica's flow %+v differs from the total %+v", own, f)
	}
}

func TestAnalyzeSumsReplicasAndMergesTheirHistograms(t *testing.T) {
	prev := Snapshot{Replicas: []ReplicaScrape{scraped(t, "a:6443", t0, before), scraped(t, "b:6443", t0, before)}}
	cur := Snapshot{Replicas: []ReplicaScrape{scraped(t, "a:6443", t0.Add(10*time.Second), after), scraped(t, "b:6443", t0.Add(10*time.Second), after)}}
	r := Analyze(prev, cur)
	f := flowOf(t, r.Load, "telemetry")
	if !near(f.DispatchedPerSecond, 40) || !near(f.SeatSecondsPerSecond, 40) || !near(f.Wait.Count, 200) || !near(f.AverageSeats, 5) {
		t.Errorf("summed flow = %+v, want 40 req/s, 40 seat-s/s, 200 waits, 5 seats", f)
	}
	if !near(r.Seats.Current, 240) || !near(r.SLIs[0].Latency.Count, 200) {
		t.Errorf("seats %+v, SLI %+v: want capacity 240 and 200 LISTs", r.Seats, r.SLIs[0])
	}
	if len(r.Replicas) != 2 || flowOf(t, *r.Replicas[1].Load, "telemetry").DispatchedPerSecond != 20 {
		t.Errorf("per-replica loads = %+v, want 20 req/s each", r.Replicas)
	}
	if !r.Coverage.Complete() || r.Coverage.String() != "covers 2 of 2 replicas" {
		t.Errorf("coverage %+v %q, want both replicas in the sums", r.Coverage, r.Coverage)
	}
}

func TestAnalyzeSumsResourcesAndSaysWhatNoReplicaShowed(t *testing.T) {
	a0 := apiserverText{cpuSeconds: 100, gomaxprocs: 4, resident: 2e9, gomemlimit: 6e9}
	a1 := a0
	a1.cpuSeconds = 125
	// Replica b strips GOMAXPROCS and sets no GOMEMLIMIT (Go reports math.MaxInt64).
	b0 := apiserverText{cpuSeconds: 50, resident: 1e9, gomemlimit: math.MaxInt64}
	b1 := b0
	b1.cpuSeconds = 60
	prev := Snapshot{Replicas: []ReplicaScrape{scraped(t, "a:6443", t0, a0), scraped(t, "b:6443", t0, b0)}}
	cur := Snapshot{Replicas: []ReplicaScrape{scraped(t, "a:6443", t0.Add(10*time.Second), a1), scraped(t, "b:6443", t0.Add(10*time.Second), b1)}}
	r := Analyze(prev, cur)
	got := r.Resources
	if !near(got.CPUCores, 3.5) || !near(got.CPUCapacityCores, 4) || !near(got.ResidentBytes, 3e9) || !near(got.MemoryLimitBytes, 6e9) {
		t.Errorf("summed resources %+v: want 3.5 cores used of a known 4, 3 GB resident, 6 GB of limit known", got)
	}
	if want := []string{"cpu capacity", "memory limit", "network"}; !reflect.DeepEqual(got.Missing, want) {
		t.Errorf("missing %q, want %q: one replica's gap is the total's", got.Missing, want)
	}
	if a := r.Replicas[0].Load.Resources; !near(a.CPUCores, 2.5) || !reflect.DeepEqual(a.Missing, []string{"network"}) {
		t.Errorf("replica a: %+v, want 2.5 cores and only the network missing", a)
	}
}

func TestAnalyzeTreatsACounterThatWentDownAsARestart(t *testing.T) {
	restarted := after
	restarted.start = float64(t0.Add(5*time.Second).UnixNano()) / 1e9
	restarted.dispatched, restarted.execSum, restarted.seatsSum, restarted.seatsCount, restarted.rejectedFull = 50, 10, 100, 50, 0
	restarted.waitBuckets, restarted.waitCount = [3]float64{5, 5, 5}, 5
	restarted.sliBuckets, restarted.sliCount = [3]float64{3, 3, 3}, 3

	r := Analyze(
		Snapshot{Replicas: []ReplicaScrape{scraped(t, "a:6443", t0, before)}},
		Snapshot{Replicas: []ReplicaScrape{scraped(t, "a:6443", t0.Add(10*time.Second), restarted)}})
	f := flowOf(t, r.Load, "telemetry")
	// Counters count from the restart, 5 s before the second scrape.
	if r.Replicas[0].State != ReplicaRestarted || !near(f.DispatchedPerSecond, 10) || f.RejectedPerSecond != 0 ||
		!near(f.SeatSecondsPerSecond, 4) || !near(f.Wait.Count, 5) || !near(r.SLIs[0].Latency.Count, 3) {
		t.Errorf("after restart: state %s, flow %+v, SLIs %+v; want restarted, 10 req/s, 4 seat-s/s, 5 waits, 3 LISTs", r.Replicas[0].State, f, r.SLIs)
	}

	// Without a process start time to compare, a counter going down still means counting anew.
	noStart := restarted
	noStart.start = 100
	r = Analyze(
		Snapshot{Replicas: []ReplicaScrape{scraped(t, "a:6443", t0, before)}},
		Snapshot{Replicas: []ReplicaScrape{scraped(t, "a:6443", t0.Add(10*time.Second), noStart)}})
	f = flowOf(t, r.Load, "telemetry")
	if !near(f.DispatchedPerSecond, 5) || !near(f.Wait.Count, 5) || !near(f.AverageSeats, 2) {
		t.Errorf("counter reset: flow %+v, want 50 new requests over 10 s, 5 waits, 2 seats each", f)
	}
}

func TestAnalyzeReportsReplicasThatAppearVanishOrFail(t *testing.T) {
	prev := Snapshot{Replicas: []ReplicaScrape{scraped(t, "a:6443", t0, before), scraped(t, "gone:6443", t0, before), unreachable("down:6443")}}
	cur := Snapshot{Replicas: []ReplicaScrape{
		scraped(t, "a:6443", t0.Add(10*time.Second), after),
		scraped(t, "new:6443", t0.Add(10*time.Second), after),
		unreachable("fail:6443"),
		scraped(t, "down:6443", t0.Add(10*time.Second), after),
	}}
	r := Analyze(prev, cur)
	want := map[string]ReplicaState{"a:6443": ReplicaOK, "new:6443": ReplicaNew, "fail:6443": ReplicaUnreachable, "gone:6443": ReplicaGone, "down:6443": ReplicaNew}
	if len(r.Replicas) != len(want) {
		t.Fatalf("replicas = %+v, want %d", r.Replicas, len(want))
	}
	for _, rep := range r.Replicas {
		if rep.State != want[rep.Replica] {
			t.Errorf("replica %s state %s, want %s", rep.Replica, rep.State, want[rep.Replica])
		}
		if rep.State == ReplicaUnreachable && (rep.Load != nil || !strings.Contains(rep.Error, "fail:6443")) {
			t.Errorf("unreachable replica %+v: want no load and an error naming it", rep)
		}
	}
	if r.Reachable() {
		t.Error("Reachable() = true with an unreachable replica")
	}
	// Listed now: a, new, fail, down (gone is not); read: a, new, down; rated: a alone.
	if want := (Coverage{Replicas: 4, Read: 3, Rated: 1}); r.Coverage != want || r.Coverage.Complete() ||
		r.Coverage.String() != "covers 3 of 4 replicas (rates from 1)" {
		t.Errorf("coverage %+v %q, want %+v", r.Coverage, r.Coverage, want)
	}
	f := flowOf(t, r.Load, "telemetry")
	// Rates come from a only; gauges from the three replicas read now.
	if !near(f.DispatchedPerSecond, 20) || !near(f.ExecutingSeats, 45) || !near(r.Seats.Current, 360) {
		t.Errorf("flow %+v, seats %+v: want 20 req/s (a only), 45 executing seats and 360 capacity (three replicas)", f, r.Seats)
	}
}

func TestSLOSecondsFollowsTheUpstreamObjectives(t *testing.T) {
	cases := []struct {
		verb, scope string
		want        float64
	}{
		{"GET", "resource", 1},
		{"LIST", "namespace", 5},
		{"LIST", "cluster", 30},
		{"POST", "resource", 1},
		{"APPLY", "resource", 1},
		{"DELETE", "namespace", 0}, // a collection delete: no SLO
		{"WATCH", "cluster", 0},
		{"CONNECT", "resource", 0},
	}
	for _, c := range cases {
		if got := SLOSeconds(c.verb, c.scope); got != c.want {
			t.Errorf("SLOSeconds(%s, %s) = %g, want %g", c.verb, c.scope, got, c.want)
		}
	}
}

func TestSLIBreachedWhenP99ExceedsTheObjective(t *testing.T) {
	slow := after
	slow.sliBuckets, slow.sliCount = [3]float64{10, 10, 10}, 110 // 100 new LISTs above 4 s
	r := Analyze(
		Snapshot{Replicas: []ReplicaScrape{scraped(t, "a:6443", t0, before)}},
		Snapshot{Replicas: []ReplicaScrape{scraped(t, "a:6443", t0.Add(10*time.Second), slow)}})
	// Beyond the last finite bucket the estimate is that bound (4 s): within 30 s for a LIST.
	if r.SLIs[0].Breached || r.SLIs[0].Latency.P99Seconds != 4 {
		t.Errorf("SLI %+v, want p99 4 s not breached", r.SLIs[0])
	}
}

func TestP99InterpolatesWithinTheBucketHoldingTheRank(t *testing.T) {
	cases := []struct {
		name string
		h    histogram
		want Quantile
	}{
		{"empty", histogram{uppers: []float64{1}, cumulative: []float64{0}}, Quantile{}},
		{"all in first bucket", histogram{count: 100, uppers: []float64{0.1, 1}, cumulative: []float64{100, 100}}, Quantile{100, 0.099}},
		{"spread", histogram{count: 1000, uppers: []float64{0.1, 1, 10}, cumulative: []float64{900, 980, 1000}}, Quantile{1000, 1 + 9*0.5}},
		{"beyond last bound", histogram{count: 10, uppers: []float64{0.1}, cumulative: []float64{0}}, Quantile{10, 0.1}},
		{"zero bucket", histogram{count: 10, uppers: []float64{0, 1}, cumulative: []float64{10, 10}}, Quantile{10, 0}},
	}
	for _, c := range cases {
		if got := c.h.p99(); got.Count != c.want.Count || !near(got.P99Seconds, c.want.P99Seconds) {
			t.Errorf("%s: p99 = %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestHistogramsWithDifferentBucketsMerge(t *testing.T) {
	h := histogram{count: 10, uppers: []float64{1, 10}, cumulative: []float64{5, 10}}
	h.add(histogram{count: 4, uppers: []float64{2}, cumulative: []float64{4}})
	want := histogram{count: 14, uppers: []float64{1, 2, 10}, cumulative: []float64{5, 9, 14}}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Errorf("merged = %+v, want %+v", h, want)
	}
}
