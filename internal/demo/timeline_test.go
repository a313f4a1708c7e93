package demo

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/report"
)

func TestSummarizeCountsTimeOutsideTheSLO(t *testing.T) {
	nan := Number(math.NaN())
	samples := []Sample{
		{At: 2, ProbeP99: 0.05, AgentNodes: 50},
		{At: 4, ProbeP99: 1.4, Rejected: 3, AgentNodes: 200},    // p99 over 1 s
		{At: 6, ProbeP99: 0.2, ProbeFailed: 1, AgentNodes: 200}, // a failure
		{At: 8, ProbeP99: nan, ProbeStuck: 4, AgentNodes: 200},  // nothing answered
		{At: 10, ProbeP99: 0.04, Rejected: 1, AgentNodes: 180},
	}
	got := Summarize(samples, 5, 2)
	if got.SecondsOverSLO != 6 {
		t.Errorf("SecondsOverSLO = %v, want 6 (three broken samples of 2 s)", got.SecondsOverSLO)
	}
	if got.UnusableAfter != 4 {
		t.Errorf("UnusableAfter = %v, want 4", got.UnusableAfter)
	}
	if got.ProbeP99Max != 1.4 {
		t.Errorf("ProbeP99Max = %v, want 1.4 (a missing p99 is not a number)", got.ProbeP99Max)
	}
	if got.Rejected != 8 {
		t.Errorf("Rejected = %v, want 8 (3/s and 1/s over 2 s)", got.Rejected)
	}
	if got.MaxAgentNodes != 200 || got.FinalAgentNodes != 180 {
		t.Errorf("agent nodes max/final = %d/%d, want 200/180", got.MaxAgentNodes, got.FinalAgentNodes)
	}
}

func TestSummarizeNeverBrokenIsMinusOne(t *testing.T) {
	got := Summarize([]Sample{{At: 2, ProbeP99: 0.01}, {At: 4, ProbeP99: 0.99}}, 3, 2)
	if got.UnusableAfter != -1 || got.SecondsOverSLO != 0 {
		t.Fatalf("UnusableAfter %v, SecondsOverSLO %v; want -1 and 0", got.UnusableAfter, got.SecondsOverSLO)
	}
}

func TestSummarizeSplitsDNSSuccessAtTheRestart(t *testing.T) {
	samples := []Sample{
		{At: 2, DNS: map[string]DNSCount{CoreDNS: {OK: 10}, BulkheadDNS: {OK: 10}}},
		{At: 4, DNS: map[string]DNSCount{CoreDNS: {OK: 0, Failed: 10}, BulkheadDNS: {OK: 10}}},
		{At: 6, DNS: map[string]DNSCount{CoreDNS: {OK: 5, Failed: 5}, BulkheadDNS: {OK: 10}}},
	}
	got := Summarize(samples, 4, 2)
	for _, c := range []struct {
		name      string
		got, want Number
	}{
		{"CoreDNS overall", got.DNSSuccess[CoreDNS], 0.5},
		{"CoreDNS after restart", got.DNSSuccessAfterRestart[CoreDNS], 0.25},
		{"bulkhead overall", got.DNSSuccess[BulkheadDNS], 1},
		{"bulkhead after restart", got.DNSSuccessAfterRestart[BulkheadDNS], 1},
	} {
		if math.Abs(float64(c.got-c.want)) > 1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestReportsShowBothRunsAndEncodeMissingValuesAsNull(t *testing.T) {
	runs := []Run{
		{Mode: Unguarded, Nodes: 200, DNSRestartAt: 5, Samples: []Sample{
			{At: 2, ProbeP99: 2.5, ServerGetP99: Number(math.NaN()), Seats: map[string]float64{"service-accounts": 20}, DNS: map[string]DNSCount{CoreDNS: {Failed: 4}, BulkheadDNS: {OK: 4}}, AgentNodes: 200},
		}, Events: []Event{{At: 0, Text: "telemetry DaemonSet applied to every node, the ordinary way"}}},
		{Mode: Guarded, Nodes: 200, DNSRestartAt: 5, Samples: []Sample{
			{At: 2, ProbeP99: 0.03, ServerGetP99: 0.01, Seats: map[string]float64{"bulkhead-telemetry": 1}, DNS: map[string]DNSCount{CoreDNS: {OK: 4}, BulkheadDNS: {OK: 4}}, AgentNodes: 2},
		}},
	}
	for i := range runs {
		runs[i].Summary = Summarize(runs[i].Samples, runs[i].DNSRestartAt, 2)
	}
	var table bytes.Buffer
	if err := WriteTable(&table, runs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"unguarded", "guarded", "2.50s", "30ms", "after 2s", "never", "0.0%", "100.0%", "200 of 200", "2 of 200"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var html bytes.Buffer
	if err := WriteHTML(&html, runs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "service-accounts", "bulkhead-telemetry", "applied to every node", CoreDNS} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	data, err := json.Marshal(runs)
	if err != nil {
		t.Fatalf("JSON report: %v", err)
	}
	if !strings.Contains(string(data), `"serverGetP99":null`) {
		t.Errorf("a missing server p99 is not null in JSON: %s", data)
	}
}

func TestReportShadesTheSpansWhenEveryProbeRequestFailed(t *testing.T) {
	up := func(at float64) Sample { return Sample{At: at, ProbeOK: 20, ProbeP99: 0.01} }
	down := func(at float64) Sample { return Sample{At: at, ProbeFailed: 20, ProbeP99: 0.001} }
	r := Run{Samples: []Sample{up(2), down(4), down(6), up(8), up(9), down(10)}}
	got := downSpans(r)
	want := [][2]float64{{2, 6}, {9, 10}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("downSpans = %v, want %v", got, want)
	}
	html := string(probeChart(r))
	if strings.Count(html, "<rect") != 2 {
		t.Fatalf("probe chart should shade 2 spans:\n%s", html)
	}
	// The line breaks where the apiserver was down instead of sloping across it.
	if n := strings.Count(html, "<polyline"); n != 2 {
		t.Fatalf("probe chart draws %d lines, want 2 (one per stretch with answers):\n%s", n, html)
	}
}

func TestTableSaysWhereTheGuardedRolloutHaltedAndWhatItPredicted(t *testing.T) {
	decided := time.Date(2026, 11, 25, 6, 34, 48, 0, time.UTC)
	guarded := Run{Mode: Guarded, Nodes: 200, RolloutReport: &report.Report{
		Phase: "RolledBack", Eligible: 200, Updated: decided.Add(1500 * time.Millisecond),
		Budgets: []report.Budget{{Resource: "cpu", Limit: 0.5, Capacity: 2, Gated: true}, {Resource: "memory"}},
		Steps: []report.Step{{Wave: 1, Label: "wave 1", Nodes: 2, Verdict: report.Halted, DecidedAt: decided,
			Resources: map[string]report.StepResource{
				"cpu":    {Predicted: &report.Interval{Mean: 4.3, Low: 2.2, High: 6.4}},
				"memory": {Predicted: &report.Interval{Mean: 3 << 30, Low: 1 << 30, High: 5 << 30}}}}},
	}}
	var out bytes.Buffer
	if err := WriteTable(&out, []Run{{Mode: Unguarded, Nodes: 200}, guarded}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"halted at wave 1 (2 of 200 nodes)", "4.30 cores (95%: 2.20–6.40) vs 0.500 cores of 2.00 cores",
		"3.0 GiB (95%: 1.0 GiB–5.0 GiB) (not gated: capacity unknown)", "1.50s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
