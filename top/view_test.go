package top

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// labReading analyzes two lab captures (see labSnapshots).
func labReading(t *testing.T, before, after string) controlplane.Reading {
	t.Helper()
	s := labSnapshots(t, before, after)
	return controlplane.Analyze(s[0], s[1])
}

// snapshotsFromReadingFixtures is the agent capture pair as two snapshots.
func snapshotsFromReadingFixtures(t *testing.T) []controlplane.Snapshot {
	return labSnapshots(t, "agent-0.prom.gz", "agent-1.prom.gz")
}

// labSnapshots loads two /metrics bodies captured from the lab (see
// controlplane/testdata/captures.json) as snapshots of replica 10.0.0.1; the second snapshot also
// holds a replica 10.0.0.2 that timed out.
func labSnapshots(t *testing.T, before, after string) []controlplane.Snapshot {
	t.Helper()
	dir := filepath.Join("..", "controlplane", "testdata")
	raw, err := os.ReadFile(filepath.Join(dir, "captures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var index struct {
		Captures map[string]struct{ Taken float64 } `json:"captures"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		t.Fatal(err)
	}
	scrape := func(name string) controlplane.ReplicaScrape {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		families, err := controlplane.ParseMetrics(body, "text/plain; version=0.0.4")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sec, frac := math.Modf(index.Captures[name].Taken)
		return controlplane.ReplicaScrape{Replica: "10.0.0.1:6443", Taken: time.Unix(int64(sec), int64(frac*1e9)), Families: families, Bytes: int64(len(body))}
	}
	down := controlplane.ReplicaScrape{Replica: "10.0.0.2:6443", Err: errorString("replica 10.0.0.2:6443: unreachable: GET https://10.0.0.2:6443/metrics timed out after 5s")}
	return []controlplane.Snapshot{
		{Replicas: []controlplane.ReplicaScrape{scrape(before)}},
		{Replicas: []controlplane.ReplicaScrape{scrape(after), down}},
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./top -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test ./top -update rewrites it):\n%s", path, got)
	}
}

func TestJSONShapeIsStable(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, labReading(t, "reject-0.prom.gz", "reject-1.prom.gz")); err != nil {
		t.Fatal(err)
	}
	golden(t, "reading.json", b.Bytes())

	// The documented shape round-trips into the same Reading.
	var back controlplane.Reading
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not decode into a Reading: %v", err)
	}
	if len(back.Flows) == 0 || len(back.Replicas) != 2 || back.Replicas[1].State != controlplane.ReplicaUnreachable {
		t.Errorf("decoded reading lost flows or replicas: %d flows, %+v", len(back.Flows), back.Replicas)
	}
}

func TestTableShowsSLOsSeatsAndFlowsSortedBySeatSeconds(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, labReading(t, "reject-0.prom.gz", "reject-1.prom.gz"), View{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "table.txt", b.Bytes())
	if rows := flowRows(b.String()); len(rows) == 0 || strings.Join(strings.Fields(rows[0])[:2], " ") != "telemetry-agent telemetry-tight" {
		t.Errorf("flow rows = %q, want the saturated telemetry-agent flow first", rows)
	}
	if !strings.Contains(b.String(), "REPLICAS 1 of 2 read: 10.0.0.1:6443 ok · 10.0.0.2:6443 unreachable (replica 10.0.0.2:6443: unreachable: GET") {
		t.Errorf("the header does not say the sums cover 1 of 2 replicas, or lacks the unreachable one and its cause:\n%s", b.String())
	}
}

func TestTableSortsAndSplitsPerReplica(t *testing.T) {
	r := labReading(t, "agent-0.prom.gz", "agent-1.prom.gz")
	var b bytes.Buffer
	if err := Render(&b, r, View{Sort: ByRequests, MaxFlows: 1}); err != nil {
		t.Fatal(err)
	}
	var top controlplane.FlowLoad
	for _, f := range r.Flows {
		if f.DispatchedPerSecond > top.DispatchedPerSecond {
			top = f
		}
	}
	if rows := flowRows(b.String()); len(rows) != 1 || strings.Fields(rows[0])[0] != top.FlowSchema {
		t.Errorf("sorted by req/s with one row, got:\n%s\nwant only %s", b.String(), top.FlowSchema)
	}

	b.Reset()
	if err := Render(&b, r, View{PerReplica: true}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "REPLICA 10.0.0.1:6443 ok\nSEATS") || !strings.Contains(out, "REPLICA 10.0.0.2:6443 unreachable\n") {
		t.Errorf("per-replica view lacks a section per replica:\n%s", out)
	}
}

// flowRows returns the lines of the first flow table after its heading.
func flowRows(table string) []string {
	var rows []string
	in := false
	for _, line := range strings.Split(table, "\n") {
		switch {
		case strings.HasPrefix(line, "FLOW SCHEMA"):
			in = true
		case in && line == "":
			return rows
		case in:
			rows = append(rows, line)
		}
	}
	return rows
}

func TestParseSortKeyNamesTheChoices(t *testing.T) {
	if k, err := ParseSortKey("wait"); err != nil || k != ByWait {
		t.Errorf("ParseSortKey(wait) = %q, %v", k, err)
	}
	if _, err := ParseSortKey("cpu"); err == nil || !strings.Contains(err.Error(), "seats, rps, rejected, wait, queued, name") {
		t.Errorf("ParseSortKey(cpu) error = %v, want the list of keys", err)
	}
	if BySeatSeconds.next() != ByRequests || ByName.next() != BySeatSeconds {
		t.Error("the s key does not cycle through every sort key")
	}
}

func TestHeaderSaysSoWhenNoReplicaCouldBeRead(t *testing.T) {
	down := controlplane.ReplicaScrape{Replica: "10.0.0.1:6443", Err: errorString("replica 10.0.0.1:6443: unreachable: GET https://10.0.0.1:6443/metrics: connection refused")}
	r := controlplane.Analyze(controlplane.Snapshot{}, controlplane.Snapshot{Replicas: []controlplane.ReplicaScrape{down}})
	var b bytes.Buffer
	if err := Render(&b, r, View{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "bulkhead top  window 0.0s no replica read") || !strings.Contains(b.String(), "10.0.0.1:6443 unreachable (replica 10.0.0.1:6443: unreachable") {
		t.Errorf("header:\n%s", b.String())
	}
}
