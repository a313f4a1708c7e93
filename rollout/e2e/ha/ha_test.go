// Package ha runs guarded rollouts on a lab of three kube-apiservers behind a load balancer, as
// production control planes run: the servers' capacity and the agents' load are summed over
// replicas, the busiest replica must fit its own share, and a replica lost during a soak is left
// out of the measurement — never counted as idle — and named. The same rollout is guarded from
// a Prometheus that scrapes the replicas, for control planes that show their metrics only there.
package ha

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/e2e/seedrun"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

var lab *labtest.Lab

// The lab runs a Prometheus that scrapes every replica (make test sets BULKHEAD_PROMETHEUS_BIN;
// without it the test that reads from Prometheus fails, saying so).
func TestMain(m *testing.M) {
	opts := seedrun.LabOptions()
	opts.Prometheus = os.Getenv("BULKHEAD_PROMETHEUS_BIN")
	os.Exit(labtest.Run(m, opts, &lab))
}

// seed runs the seed's agent reading the replicas one by one.
func seed(t *testing.T, ns string, during func(context.Context)) (state.State, analyze.Decision, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	scraper, err := controlplane.NewScraper(lab.Config, controlplane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	scraper.WaitForDiscovery(ctx, 10*time.Second)
	return seedrun.Run(t, lab, ns, scraper, during)
}

func TestTheSeedsAgentIsHaltedAfterWaveOneOnThreeReplicas(t *testing.T) {
	final, halt, _ := seed(t, "ha-seed", nil)
	seedrun.RequireHaltedOnCPU(t, final, halt)
}

func TestAReplicaLostDuringTheSoakIsLeftOutAndNamed(t *testing.T) {
	// During wave 1's soak, one replica stops for 20 s.
	final, halt, lines := seed(t, "ha-lost", func(ctx context.Context) {
		if err := lab.StopReplica(ctx, 2); err != nil {
			t.Errorf("stop replica 2: %v", err)
			return
		}
		time.Sleep(20 * time.Second)
		if err := lab.StartReplica(ctx, 2); err != nil {
			t.Errorf("start replica 2: %v", err)
		}
	})
	seedrun.RequireHaltedOnCPU(t, final, halt)
	said := false
	for _, n := range halt.Notes {
		said = said || (strings.Contains(n, "could not be read afresh in") && strings.Contains(n, "left out, not counted as idle"))
	}
	if !said {
		t.Fatalf("the decision does not say which replica was missing: notes %q\n%s", halt.Notes, strings.Join(lines, "\n"))
	}
	t.Logf("halted: %s; %q", halt.Headline, halt.Notes)
}

// A control plane that shows its metrics only to a Prometheus is guarded from it: each instance
// is a replica, rated between its own samples.
func TestTheSeedsAgentIsHaltedAfterWaveOneReadFromPrometheus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := lab.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.PrometheusURL == "" {
		t.Fatal("the lab runs no Prometheus: BULKHEAD_PROMETHEUS_BIN must name one (make test sets it)")
	}
	src, err := controlplane.NewSource(lab.Config, controlplane.SourceOptions{Prometheus: st.PrometheusURL})
	if err != nil {
		t.Fatal(err)
	}
	// Prometheus scrapes every 5 s: wait until it has every replica.
	for snap := src.Scrape(ctx); !everyReplicaRead(snap); snap = src.Scrape(ctx) {
		if ctx.Err() != nil {
			t.Fatalf("prometheus shows %d instances (%+v): want the %d replicas", len(snap.Replicas), snap.Replicas, seedrun.Replicas)
		}
		time.Sleep(time.Second)
	}
	final, halt, _ := seedrun.Run(t, lab, "ha-prometheus", src, nil)
	seedrun.RequireHaltedOnCPU(t, final, halt)
}

func everyReplicaRead(snap controlplane.Snapshot) bool {
	for _, r := range snap.Replicas {
		if r.Err != nil {
			return false
		}
	}
	return len(snap.Replicas) == seedrun.Replicas
}
