// Package managed runs guarded rollouts on a control plane shaped like a managed one: three
// kube-apiservers behind one balanced address, which the default/kubernetes EndpointSlice lists
// alone, the replicas reachable only through it. The gate reads the servers per process through
// the address (rates never across two processes) and halts the seed's agent after wave 1 with
// default budgets.
package managed

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
	"github.com/bulkhead-dev/bulkhead/rollout/e2e/seedrun"
)

var lab *labtest.Lab

func TestMain(m *testing.M) {
	opts := seedrun.LabOptions()
	opts.Endpoint = labtest.EndpointBalancer
	os.Exit(labtest.Run(m, opts, &lab))
}

func TestTheEndpointSliceListsOnlyTheBalancedAddressAndAutoReadsEveryProcessBehindIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src, err := controlplane.NewSource(lab.Config, controlplane.SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scraper := src.(*controlplane.Scraper)
	if !scraper.WaitForDiscovery(ctx, 10*time.Second) {
		t.Fatal("discovery did not sync")
	}
	if got := scraper.Replicas(); len(got) != 1 {
		t.Fatalf("discovery lists %v: want the one balanced address", got)
	}
	snap := scraper.Scrape(ctx)
	if !strings.HasPrefix(snap.Source, "balanced address ") || snap.Believed != seedrun.Replicas {
		t.Fatalf("source %q, %d servers believed (%s): want auto to read a balanced address with %d servers behind it", snap.Source, snap.Believed, snap.BelievedFrom, seedrun.Replicas)
	}
	// A balancer that hands connections out in turn is reached at every process within a round.
	time.Sleep(time.Second)
	r := controlplane.Analyze(snap, scraper.Scrape(ctx))
	if r.Coverage.Rated != seedrun.Replicas || !r.Coverage.Complete() || r.Coverage.Basis() != "" {
		t.Fatalf("coverage %s (basis %q), replicas %+v: want all %d processes rated", r.Coverage, r.Coverage.Basis(), r.Replicas, seedrun.Replicas)
	}
	for _, rep := range r.Replicas {
		if !strings.Contains(rep.Replica, "(process started ") {
			t.Errorf("%q: a process behind a balanced address is named by its start", rep.Replica)
		}
	}
}

func TestTheSeedsAgentIsHaltedAfterWaveOneBehindOneBalancedAddress(t *testing.T) {
	src, err := controlplane.NewSource(lab.Config, controlplane.SourceOptions{Kind: "balanced"})
	if err != nil {
		t.Fatal(err)
	}
	final, halt, _ := seedrun.Run(t, lab, "managed-balanced", src, nil)
	seedrun.RequireHaltedOnCPU(t, final, halt)
}
