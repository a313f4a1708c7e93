package cluster

import (
	"math"
	"strings"
	"testing"
)

func TestValidateRejectsBadSizes(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(*Options)
		wantErr string
	}{
		{"zero nodes", func(o *Options) { o.Nodes = 0 }, "--nodes must be at least 1, got 0"},
		{"negative nodes", func(o *Options) { o.Nodes = -3 }, "--nodes must be at least 1, got -3"},
		{"too many nodes", func(o *Options) { o.Nodes = 40000 }, "--nodes must be at most 32768"},
		{"negative pods", func(o *Options) { o.PodsPerNode = -1 }, "--pods-per-node must not be negative"},
		{"too many pods", func(o *Options) { o.PodsPerNode = 101 }, "--pods-per-node must be at most 100"},
		{"pods without services", func(o *Options) { o.Services = 0 }, "needs at least one service"},
		{"zero inflight", func(o *Options) { o.MaxRequestsInflight = 0 }, "--max-requests-inflight must be at least 1"},
		{"zero mutating", func(o *Options) { o.MaxMutatingRequestsInflight = 0 }, "--max-mutating-requests-inflight must be at least 1"},
		{"port too large", func(o *Options) { o.Port = 70000 }, "--port must be between 0 and 65535"},
		{"empty dir", func(o *Options) { o.Dir = "" }, "--dir must not be empty"},
		{"negative cpus", func(o *Options) { o.APIServerCPUs = -1 }, "--apiserver-cpus must be 0 (none) or at least 0.1, got -1"},
		{"no apiserver", func(o *Options) { o.APIServers = 0 }, "--apiservers must be between 1 and 9, got 0"},
		{"too many apiservers", func(o *Options) { o.APIServers = 10 }, "--apiservers must be between 1 and 9, got 10"},
		{"a sliver of a cpu", func(o *Options) { o.APIServerCPUs = 0.01 }, "--apiserver-cpus must be 0 (none) or at least 0.1, got 0.01"},
		{"balancer endpoint with one apiserver", func(o *Options) { o.Endpoint = EndpointBalancer }, "--endpoint balancer needs --apiservers > 1"},
		{"unknown endpoint", func(o *Options) { o.Endpoint = "vip" }, `--endpoint must be replicas or balancer, got "vip"`},
		{"empty endpoint", func(o *Options) { o.Endpoint = "" }, `--endpoint must be replicas or balancer, got ""`},
		{"negative goaway chance", func(o *Options) { o.GoAwayChance = -0.01 }, "--goaway-chance must be between 0 and 0.02 (kube-apiserver's bound), got -0.01"},
		{"goaway chance past kube-apiserver's bound", func(o *Options) { o.GoAwayChance = 0.05 }, "--goaway-chance must be between 0 and 0.02"},
		{"NaN goaway chance", func(o *Options) { o.GoAwayChance = math.NaN() }, "--goaway-chance must be between 0 and 0.02"},
		{"unknown background", func(o *Options) { o.Background = "noisy" }, `--background must be none or busy, got "noisy"`},
		{"empty background", func(o *Options) { o.Background = "" }, `--background must be none or busy, got ""`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.mutate(&o)
			err := o.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestValidateAcceptsDefaultsAndAnEmptyCluster(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	empty := DefaultOptions()
	empty.PodsPerNode, empty.Services = 0, 0
	if err := empty.Validate(); err != nil {
		t.Fatalf("no filler workload: %v", err)
	}
	busy := DefaultOptions()
	busy.Background = BackgroundBusy
	if err := busy.Validate(); err != nil {
		t.Fatalf("--background busy: %v", err)
	}
	managed := DefaultOptions()
	managed.APIServers, managed.Endpoint, managed.GoAwayChance = 3, EndpointBalancer, MaxGoAwayChance
	if err := managed.Validate(); err != nil {
		t.Fatalf("3 apiservers behind one balanced endpoint, --goaway-chance 0.02: %v", err)
	}
}

func TestPodCIDRsAreDistinctPerNode(t *testing.T) {
	seen := map[string]int{}
	for i := 0; i < 32768; i++ {
		c := podCIDR(i)
		if j, dup := seen[c]; dup {
			t.Fatalf("nodes %d and %d share pod CIDR %s", j, i, c)
		}
		seen[c] = i
	}
	if podCIDR(32767) != "10.255.255.0/24" {
		t.Fatalf("last node's CIDR = %s, want 10.255.255.0/24", podCIDR(32767))
	}
}
