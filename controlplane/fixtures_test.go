package controlplane

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
)

// capture is one /metrics body recorded from the lab, with the time it was taken.
type capture struct {
	body        []byte
	contentType string
	taken       time.Time
}

func loadCapture(t testing.TB, name string) capture {
	t.Helper()
	var index struct {
		Captures map[string]struct{ Taken float64 } `json:"captures"`
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "captures.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		t.Fatalf("testdata/captures.json: %v", err)
	}
	meta, ok := index.Captures[name]
	if !ok {
		t.Fatalf("capture %s is not in testdata/captures.json", name)
	}
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	contentType := "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
	if strings.HasSuffix(name, ".pb.gz") {
		contentType = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores"
	}
	sec, frac := math.Modf(meta.Taken)
	return capture{body: body, contentType: contentType, taken: time.Unix(int64(sec), int64(frac*1e9))}
}

func snapshotOf(t testing.TB, replica string, names ...string) []Snapshot {
	t.Helper()
	var out []Snapshot
	for _, name := range names {
		c := loadCapture(t, name)
		families, err := ParseMetrics(c.body, c.contentType)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, Snapshot{Replicas: []ReplicaScrape{{Replica: replica, Taken: c.taken, Families: families, Bytes: int64(len(c.body))}}})
	}
	return out
}

func within(got, want, tolerance float64) bool { return math.Abs(got-want) <= tolerance*math.Abs(want) }

func TestLabCaptureOfAnAgentListingPodsShowsItsOwnFlow(t *testing.T) {
	s := snapshotOf(t, "127.0.0.1:42797", "agent-0.prom.gz", "agent-1.prom.gz")
	r := Analyze(s[0], s[1])
	window := 1795577700.676806430 - 1795577690.594995952
	f := flowOf(t, r.Load, "telemetry-agent")
	checks := []struct {
		name           string
		got, want, tol float64
	}{
		// From the capture: dispatched 89 → 140.
		{"dispatched/s", f.DispatchedPerSecond, 51 / window, 1e-6},
		// The schedule: 5 pods × 1 LIST/s.
		{"dispatched/s against the schedule", f.DispatchedPerSecond, 5, 0.10},
		// execution_seconds_sum 0.948421254 → 1.561588508; work_estimated_seats sum 89 → 230, count 89 → 140.
		{"seat-seconds/s", f.SeatSecondsPerSecond, (1.561588508 - 0.948421254) * (141.0 / 51) / window, 1e-6},
		{"execution-seconds/s", f.ExecutionSecondsPerSecond, (1.561588508 - 0.948421254) / window, 1e-6},
		{"average seats", f.AverageSeats, 141.0 / 51, 1e-6},
		// Levels of a default v1.37 install with --max-requests-inflight 400 and mutating 200.
		{"nominal seats", r.Seats.Nominal, 13 + 0 + 49 + 25 + 98 + 74 + 98 + 245, 0},
	}
	for _, c := range checks {
		if !within(c.got, c.want, c.tol) {
			t.Errorf("%s = %g, want %g (±%g)", c.name, c.got, c.want, c.tol)
		}
	}
	if f.PriorityLevel != "workload-low" || f.RejectedPerSecond != 0 {
		t.Errorf("flow %+v: want workload-low without rejections", f)
	}
	var listCluster *SLI
	for i := range r.SLIs {
		if r.SLIs[i].Verb == "LIST" && r.SLIs[i].Scope == "cluster" {
			listCluster = &r.SLIs[i]
		}
	}
	if listCluster == nil || listCluster.Latency.Count < 50 || listCluster.SLOSeconds != 30 || listCluster.Breached {
		t.Errorf("LIST/cluster SLI = %+v, want ≥ 50 calls (the agent's) within the 30 s SLO", listCluster)
	}
}

func TestLabCaptureAcrossAnAPIServerRestartCountsFromTheRestart(t *testing.T) {
	s := snapshotOf(t, "127.0.0.1:42797", "agent-1.prom.gz", "restart-1.prom.gz")
	r := Analyze(s[0], s[1])
	if r.Replicas[0].State != ReplicaRestarted {
		t.Fatalf("replica state %s, want restarted", r.Replicas[0].State)
	}
	// process_start_time_seconds 1.79557774486e+09; dispatched restarted from 0 to 84.
	since := 1795577764.125280562 - 1795577744.86
	if f := flowOf(t, r.Load, "telemetry-agent"); !within(f.DispatchedPerSecond, 84/since, 1e-6) {
		t.Errorf("dispatched/s after restart = %g, want %g", f.DispatchedPerSecond, 84/since)
	}
	if !within(r.Window.Seconds, since, 1e-6) {
		t.Errorf("window = %gs, want the %gs since the restart", r.Window.Seconds, since)
	}
	// process_cpu_seconds_total went from 9.25 down to 3.53: the new process's CPU since it started.
	if got := r.Resources.CPUCores; !within(got, 3.53/since, 1e-6) {
		t.Errorf("CPU after restart = %g cores, want %g", got, 3.53/since)
	}
}

func TestLabCaptureReadsTheAPIServersOwnResources(t *testing.T) {
	s := snapshotOf(t, "127.0.0.1:42797", "agent-0.prom.gz", "agent-1.prom.gz")
	r := Analyze(s[0], s[1])
	window := 1795577700.676806430 - 1795577690.594995952
	got := r.Resources
	want := Resources{
		CPUCores:               (9.25 - 8.44) / window,
		CPUCapacityCores:       2,
		ResidentBytes:          4.31804416e+08,
		TransmitBytesPerSecond: (9.5029913e+07 - 9.0588227e+07) / window,
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"cpu cores", got.CPUCores, want.CPUCores}, {"cpu capacity", got.CPUCapacityCores, want.CPUCapacityCores},
		{"resident bytes", got.ResidentBytes, want.ResidentBytes}, {"transmit bytes/s", got.TransmitBytesPerSecond, want.TransmitBytesPerSecond},
	} {
		if !within(c.got, c.want, 1e-6) {
			t.Errorf("%s = %g, want %g", c.name, c.got, c.want)
		}
	}
	if got.HeapInuseBytes <= 0 || got.ResponseBytesPerSecond <= 0 {
		t.Errorf("heap in use %g bytes, responses %g bytes/s: both are in the capture", got.HeapInuseBytes, got.ResponseBytesPerSecond)
	}
	// The lab sets no GOMEMLIMIT (Go reports math.MaxInt64): the limit is unknown, and said so.
	if got.MemoryLimitBytes != 0 || !slices.Equal(got.Missing, []string{"memory limit"}) {
		t.Errorf("memory limit %g, missing %q; want 0 and [memory limit]", got.MemoryLimitBytes, got.Missing)
	}
	if rep := r.Replicas[0].Load.Resources; !reflect.DeepEqual(rep, got) {
		t.Errorf("one replica's resources %+v differ from the total %+v", rep, got)
	}
}

func TestLabCaptureOfASaturatedLevelAttributesRejectionsToTheFlow(t *testing.T) {
	s := snapshotOf(t, "127.0.0.1:42797", "reject-0.prom.gz", "reject-1.prom.gz")
	r := Analyze(s[0], s[1])
	window := 1795577800.305815968 - 1795577790.181812781
	var tight FlowLoad
	for _, f := range r.Flows {
		switch {
		case f.FlowSchema == "telemetry-agent" && f.PriorityLevel == "telemetry-tight":
			tight = f
		case f.RejectedPerSecond != 0:
			t.Errorf("flow %s/%s has %g rejections/s; only telemetry-agent was saturated", f.FlowSchema, f.PriorityLevel, f.RejectedPerSecond)
		}
	}
	// From the capture: rejected{reason=concurrency-limit} 98 → 154, dispatched 409 → 606,
	// execution_seconds_sum 5.469912284 → 7.907160034, every request estimated at 10 seats.
	if !within(tight.RejectedByReason["concurrency-limit"], 56/window, 1e-6) || !within(tight.RejectedPerSecond, 56/window, 1e-6) ||
		!within(tight.DispatchedPerSecond, 197/window, 1e-6) || !within(tight.SeatSecondsPerSecond, (7.907160034-5.469912284)*10/window, 1e-6) {
		t.Errorf("telemetry-agent in telemetry-tight = %+v", tight)
	}
	level := levelOf(t, r.Load, "telemetry-tight")
	if level.NominalLimitSeats != 3 || level.CurrentLimitSeats != 3 || !within(level.Utilization, tight.SeatSecondsPerSecond/3, 1e-6) || level.RejectedPerSecond != tight.RejectedPerSecond {
		t.Errorf("level telemetry-tight = %+v, want 3 seats, its flow's rejections, utilization seat-s/s ÷ 3", level)
	}
	// The per-flow estimate (execution time × mean seats) against APF's own per-nanosecond
	// integral of the level's seats in use: seat_utilization sum 1.8309588e10 → 2.6505960e10,
	// count (ns) 2.0652560e10 → 3.0819851e10, limit 3.
	measured := (2.6505959823333324e10 - 1.8309588346666668e10) / (3.0819850573e10 - 2.0652560317e10) * 3
	if !within(level.MeasuredSeatSecondsPerSecond, measured, 1e-6) || !within(tight.SeatSecondsPerSecond, measured, 0.02) {
		t.Errorf("seat-seconds/s: flow estimate %g, level measured %g, want both %g (estimate within 2%%)", tight.SeatSecondsPerSecond, level.MeasuredSeatSecondsPerSecond, measured)
	}
}

func TestLabCaptureParsesAsProtobuf(t *testing.T) {
	c := loadCapture(t, "agent-1.pb.gz")
	if expfmt.ResponseFormat(map[string][]string{"Content-Type": {c.contentType}}).FormatType() != expfmt.TypeProtoDelim {
		t.Fatalf("content type %q is not delimited protobuf", c.contentType)
	}
	families, err := ParseMetrics(c.body, c.contentType)
	if err != nil {
		t.Fatal(err)
	}
	text := loadCapture(t, "agent-1.prom.gz")
	fromText, err := ParseMetrics(text.body, text.contentType)
	if err != nil {
		t.Fatal(err)
	}
	// Taken seconds apart, the two have the same series even where values moved on.
	for name, family := range fromText {
		if got, want := len(families[name].GetMetric()), len(family.GetMetric()); got < want {
			t.Errorf("%s: %d series from protobuf, %d from text", name, got, want)
		}
	}
}
