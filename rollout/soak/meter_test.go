package soak

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
)

// scripted is a source that answers with its snapshots in turn, then the last one again.
type scripted struct {
	mu    sync.Mutex
	snaps []controlplane.Snapshot
}

func (s *scripted) Scrape(context.Context) controlplane.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := s.snaps[0]
	if len(s.snaps) > 1 {
		s.snaps = s.snaps[1:]
	}
	return snap
}

func processScrape(t *testing.T, name string, at time.Time, dispatched int) controlplane.ReplicaScrape {
	t.Helper()
	text := fmt.Sprintf("apiserver_flowcontrol_nominal_limit_seats{priority_level=\"l\"} 10\n"+
		"apiserver_flowcontrol_dispatched_requests_total{flow_schema=\"l\",priority_level=\"l\"} %d\n", dispatched)
	families, err := controlplane.ParseMetrics([]byte(text), "text/plain; version=0.0.4")
	if err != nil {
		t.Fatal(err)
	}
	return controlplane.ReplicaScrape{Replica: name, Taken: at, Families: families}
}

// Behind a balanced address a process may be missed in one scrape; the meter then waits for
// it rather than publish an interval without its load, and rates it over its own interval.
func TestTheMeterWaitsForAProcessItDidNotReachAgain(t *testing.T) {
	t0 := time.Now()
	a0, b0 := processScrape(t, "a", t0, 0), processScrape(t, "b", t0, 0)
	a1 := processScrape(t, "a", t0.Add(5*time.Second), 50)
	a2, b2 := processScrape(t, "a", t0.Add(10*time.Second), 100), processScrape(t, "b", t0.Add(10*time.Second), 200)
	src := &scripted{snaps: []controlplane.Snapshot{
		{Replicas: []controlplane.ReplicaScrape{a0, b0}},
		{Replicas: []controlplane.ReplicaScrape{a1, b0}}, // b not reached: its last scrape carried
		{Replicas: []controlplane.ReplicaScrape{a2, b2}},
	}}
	m := &Meter{Scraper: src, Interval: 5 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go m.Run(ctx)
	m.Wait(ctx)
	readings := m.Since(time.Time{})
	if len(readings) != 1 {
		t.Fatalf("%d readings, want the one from the first scrape to the one that reached b again", len(readings))
	}
	r := readings[0]
	if !r.Reachable() || r.Coverage.Rated != 2 {
		t.Fatalf("reading %+v, want both processes rated", r.Replicas)
	}
	var dispatched float64
	for _, f := range r.Flows {
		dispatched += f.DispatchedPerSecond
	}
	if dispatched != 30 { // a 100 and b 200 over their 10 s
		t.Errorf("dispatched %.1f/s, want 30/s", dispatched)
	}
}
