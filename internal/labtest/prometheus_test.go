package labtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
)

// The lab's Prometheus (bulkhead-lab up --prometheus) scrapes every replica directly, as job
// "apiserver" with the replica's address as instance, and bulkhead's Prometheus source reads
// from it what a scraper reads from the replicas: all three, with rates.
func TestPrometheusScrapesEveryReplicaForThePrometheusSource(t *testing.T) {
	started := time.Now()
	l, err := labtest.Start(labtest.Options{Nodes: 10, PodsPerNode: 2, Services: 4, APIServers: haReplicas,
		Prometheus: labtest.Prometheus(t)})
	if err != nil {
		t.Fatalf("the 3-apiserver lab with Prometheus did not start: %v", err)
	}
	closed := false
	defer func() {
		if !closed {
			l.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	st, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	prom, err := url.Parse(st.PrometheusURL)
	if err != nil || prom.Hostname() != "127.0.0.1" {
		t.Fatalf("status gives Prometheus at %q (%v), want an http URL on 127.0.0.1", st.PrometheusURL, err)
	}
	var replicas []string
	for _, r := range st.Replicas {
		replicas = append(replicas, r.Address)
	}
	slices.Sort(replicas)
	if len(replicas) != haReplicas {
		t.Fatalf("status lists replicas %v, want %d", replicas, haReplicas)
	}

	// Every replica is scraped: up is 1 for each, labelled with its address.
	var up map[string]float64
	var lastErr error
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		up, lastErr = promQuery(ctx, st.PrometheusURL, `up{job="apiserver"} == 1`)
		return lastErr == nil && slices.Equal(slices.Sorted(maps.Keys(up)), replicas), nil
	})
	if err != nil {
		t.Fatalf("after a minute Prometheus scrapes %v successfully (last error: %v), want every replica %v", slices.Sorted(maps.Keys(up)), lastErr, replicas)
	}

	// The instances are this lab's processes: each started after the test did (give or take the
	// second to which the kernel's boot time, the base of process start times, is rounded).
	starts, err := promQuery(ctx, st.PrometheusURL, `process_start_time_seconds{job="apiserver"}`)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(slices.Sorted(maps.Keys(starts)), replicas) {
		t.Fatalf("process_start_time_seconds is there for %v, want every replica %v", slices.Sorted(maps.Keys(starts)), replicas)
	}
	for instance, start := range starts {
		at := time.Unix(0, int64(start*1e9))
		if at.Before(started.Add(-2*time.Second)) || at.After(time.Now()) {
			t.Errorf("%s: process_start_time_seconds is %s, want between the test's start %s and now", instance, at.UTC(), started.UTC())
		}
	}

	// Two snapshots at least 15 s of samples apart give rates for every replica.
	source, err := controlplane.NewPrometheusSource(st.PrometheusURL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := source.SnapshotAt(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	firstTaken := time.Time{}
	for _, r := range first.Replicas {
		if r.Err != nil {
			t.Fatalf("first snapshot: %v", r.Err)
		}
		if r.Taken.After(firstTaken) {
			firstTaken = r.Taken
		}
	}
	var second controlplane.Snapshot
	err = wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, false, func(ctx context.Context) (bool, error) {
		if second, lastErr = source.SnapshotAt(ctx, time.Now()); lastErr != nil {
			return false, nil
		}
		for _, r := range second.Replicas {
			if lastErr = r.Err; r.Err != nil || r.Taken.Sub(firstTaken) < 15*time.Second {
				return false, nil
			}
		}
		return len(second.Replicas) == haReplicas, nil
	})
	if err != nil {
		t.Fatalf("no snapshot of %d replicas with samples 15 s after the first's (%s) within a minute (last error: %v)", haReplicas, firstTaken.UTC(), lastErr)
	}
	reading := controlplane.Analyze(first, second)
	var read []string
	for _, r := range reading.Replicas {
		read = append(read, r.Replica)
	}
	slices.Sort(read)
	if !slices.Equal(read, replicas) || reading.Coverage.Replicas != haReplicas || reading.Coverage.Rated != haReplicas {
		t.Fatalf("the reading %s, of %v, want rates from all %d replicas %v", reading.Coverage, read, haReplicas, replicas)
	}
	dispatched := 0.0
	for _, level := range reading.PriorityLevels {
		dispatched += level.DispatchedPerSecond
	}
	if dispatched <= 0 {
		t.Fatalf("APF dispatched %.3f requests/s over %.1fs across the replicas, want some (leases, controllers, the emulator)", dispatched, reading.Window.Seconds)
	}
	t.Logf("over %.1fs Prometheus shows APF dispatching %.1f requests/s (the reading %s)", reading.Window.Seconds, dispatched, reading.Coverage)

	// Prometheus stops with the lab: no process, no listener.
	closed = true
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if pid := st.ComponentPIDs["prometheus"]; pid == 0 || syscall.Kill(pid, 0) == nil {
		t.Errorf("Prometheus (pid %d) is still alive after the lab stopped", pid)
	}
	if conn, err := net.DialTimeout("tcp", prom.Host, time.Second); err == nil {
		conn.Close()
		t.Errorf("Prometheus at %s still accepts connections after the lab stopped", prom.Host)
	}
}

// promQuery runs an instant PromQL query and returns each result's value by its instance label.
func promQuery(ctx context.Context, base, query string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", query, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", query, err)
	}
	var answer struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || answer.Status != "success" {
		return nil, fmt.Errorf("query %s: %s %s (%v)", query, resp.Status, body, err)
	}
	values := map[string]float64{}
	for _, r := range answer.Data.Result {
		text, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v of %v: %w", query, r.Value[1], r.Metric, err)
		}
		values[r.Metric["instance"]] = v
	}
	return values, nil
}
