package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
)

// A control plane of three kube-apiservers behind the lab's load balancer: top finds the replicas
// in the default/kubernetes EndpointSlice and reads each; with one stopped it lists that one
// unreachable, says its sums cover 2 of 3 and exits non-zero; once it is back it reads all three.
func TestTopReadsEveryReplicaAndSaysWhichItMissed(t *testing.T) {
	ha := labtest.New(t, labtest.Options{Nodes: 10, PodsPerNode: 2, Services: 4, APIServers: 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := ha.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, r := range st.Replicas {
		addrs = append(addrs, r.Address)
	}
	slices.Sort(addrs)

	scraper, err := controlplane.NewScraper(ha.Config, controlplane.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !scraper.WaitForDiscovery(ctx, 10*time.Second) {
		t.Fatalf("the EndpointSlice watch did not sync: %v", scraper.DiscoveryError())
	}
	if got := scraper.Replicas(); !slices.Equal(got, addrs) {
		t.Fatalf("discovered replicas %v, the lab runs %v", got, addrs)
	}

	readJSON := func(t *testing.T) (controlplane.Reading, error) {
		t.Helper()
		out, err := runTopOn(t, ha, "--once", "-o", "json", "--interval", "2s", "--timeout", "2s")
		var r controlplane.Reading
		if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
			t.Fatalf("top --once -o json printed no Reading (%v; exit error %v):\n%s", jerr, err, out)
		}
		return r, err
	}
	states := func(r controlplane.Reading) map[string]controlplane.ReplicaState {
		out := map[string]controlplane.ReplicaState{}
		for _, rep := range r.Replicas {
			out[rep.Replica] = rep.State
		}
		return out
	}

	all, err := readJSON(t)
	if err != nil {
		t.Fatalf("top --once with three replicas up: %v", err)
	}
	want := map[string]controlplane.ReplicaState{addrs[0]: controlplane.ReplicaOK, addrs[1]: controlplane.ReplicaOK, addrs[2]: controlplane.ReplicaOK}
	// counted is a coverage's counts alone: how many replicas were listed, read and rated.
	counted := func(c controlplane.Coverage) controlplane.Coverage {
		return controlplane.Coverage{Replicas: c.Replicas, Read: c.Read, Rated: c.Rated}
	}
	if got := states(all); !maps.Equal(got, want) || counted(all.Coverage) != (controlplane.Coverage{Replicas: 3, Read: 3, Rated: 3}) {
		t.Fatalf("three replicas up: states %v, coverage %+v; want %v, all covered", got, all.Coverage, want)
	}
	// The identity Leases count the same three servers, without reaching them.
	if c := all.Coverage; c.Source != "replicas discovered" || c.Believed != 3 || c.Basis() != "" {
		t.Fatalf("coverage %+v (basis %q): want the discovered replicas, 3 servers by the identity Leases, nothing to add", c, c.Basis())
	}
	// Each replica has its own APF seats, and the sum is theirs together.
	var perReplica float64
	for _, rep := range all.Replicas {
		if rep.Load == nil || rep.Load.Seats.Nominal < 600 {
			t.Fatalf("replica %s: load %+v, want its own ≥ 600 seats", rep.Replica, rep.Load)
		}
		perReplica += rep.Load.Seats.Nominal
	}
	if all.Seats.Nominal != perReplica {
		t.Errorf("summed nominal seats %.0f, replicas' own add up to %.0f", all.Seats.Nominal, perReplica)
	}

	stopped := st.Replicas[1]
	if err := ha.StopReplica(ctx, stopped.Index); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			_ = ha.StartReplica(ctx, stopped.Index)
		}
	}()
	two, err := readJSON(t)
	if err == nil || !strings.Contains(err.Error(), "could not be read") || !strings.Contains(err.Error(), "covers 2 of 3 replicas") || !strings.Contains(err.Error(), stopped.Address) {
		t.Errorf("top --once with %s stopped: exit error %v, want non-zero naming it and the coverage", stopped.Address, err)
	}
	want[stopped.Address] = controlplane.ReplicaUnreachable
	if got := states(two); !maps.Equal(got, want) || counted(two.Coverage) != (controlplane.Coverage{Replicas: 3, Read: 2, Rated: 2}) {
		t.Errorf("one replica stopped: states %v, coverage %+v; want %v, 2 of 3 covered", got, two.Coverage, want)
	}
	if two.Seats.Nominal >= all.Seats.Nominal || two.Seats.Nominal < 1200 {
		t.Errorf("with one replica stopped the summed seats are %.0f (all three: %.0f): want two replicas' worth", two.Seats.Nominal, all.Seats.Nominal)
	}
	table, err := runTopOn(t, ha, "--once", "--interval", "1s", "--timeout", "2s", "--per-replica")
	if err == nil || !strings.Contains(table, "REPLICAS 2 of 3 read") || !strings.Contains(table, "REPLICA "+stopped.Address+" unreachable") ||
		!strings.Contains(table, "REPLICA "+addrs[0]+" ok") {
		t.Errorf("top --once --per-replica with %s stopped: err %v, output:\n%s", stopped.Address, err, table)
	}

	if err := ha.StartReplica(ctx, stopped.Index); err != nil {
		t.Fatal(err)
	}
	restarted = true
	back, err := readJSON(t)
	if err != nil {
		t.Fatalf("top --once after %s came back: %v", stopped.Address, err)
	}
	want[stopped.Address] = controlplane.ReplicaOK
	if got := states(back); !maps.Equal(got, want) || !back.Coverage.Complete() {
		t.Errorf("after the replica came back: states %v, coverage %+v; want all three ok and covered", got, back.Coverage)
	}
}
