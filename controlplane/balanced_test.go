package controlplane

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// fakeProcess is one kube-apiserver process behind a test balancer: every time it answers, its
// telemetry flow has dispatched perServe more requests and it has burned 0.01 s of CPU.
type fakeProcess struct {
	start, base, perServe, cpu float64
	served                     int
}

func (p *fakeProcess) text() string {
	p.served++
	return apiserverText{start: p.start, dispatched: p.base + p.perServe*float64(p.served), execCount: 1, seatsCount: 1, seatsSum: 1,
		cpuSeconds: p.cpu + 0.01*float64(p.served), gomaxprocs: 2}.String()
}

// balancerOf serves /metrics over TLS from the processes, choosing one per connection with pick
// as an L4 balancer does, and returns a Scraper that reads it as endpoint.
func balancerOf(t *testing.T, endpoint Endpoint, processes []*fakeProcess, pick func(connection int) int) *Scraper {
	return balancerPicking(t, endpoint, processes, pick, func(r *http.Request) string { return r.RemoteAddr })
}

// balancerPicking chooses a process per key of each request: its connection, or the request
// itself for a balancer that spreads requests.
func balancerPicking(t *testing.T, endpoint Endpoint, processes []*fakeProcess, pick func(n int) int, key func(*http.Request) string) *Scraper {
	t.Helper()
	var mu sync.Mutex
	connections := 0
	chosen := map[string]int{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		i, ok := chosen[key(r)]
		if !ok {
			i = pick(connections)
			connections++
			chosen[key(r)] = i
		}
		w.Header().Set("Content-Type", textFormat)
		w.Write([]byte(processes[i].text()))
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	s, err := NewScraper(&rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca}},
		Options{Timeout: 5 * time.Second, NoDiscovery: true, Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// threeProcesses' counters lie far apart: a rate taken across two of them is off by thousands.
func threeProcesses() []*fakeProcess {
	return []*fakeProcess{
		{start: 1700000000.01, base: 1e6, perServe: 10, cpu: 5000},
		{start: 1700000000.02, base: 10, perServe: 10, cpu: 10},
		{start: 1700000000.03, base: 5e5, perServe: 10, cpu: 2500},
	}
}

func dispatched(t *testing.T, r Reading) float64 {
	t.Helper()
	for _, f := range r.Flows {
		if f.FlowSchema == "telemetry" {
			return f.DispatchedPerSecond
		}
	}
	t.Fatalf("no telemetry flow in the reading: %+v", r.Flows)
	return 0
}

// rounds scrapes n rounds, a little apart, and returns the reading of the last two.
func rounds(t *testing.T, s *Scraper, n int) Reading {
	t.Helper()
	var snaps []Snapshot
	for range n {
		snaps = append(snaps, s.Scrape(context.Background()))
		time.Sleep(20 * time.Millisecond) // rates need time between scrapes, not a deadline
	}
	return Analyze(snaps[n-2], snaps[n-1])
}

// An L4 balancer hands each new connection to the next replica: over rounds the scraper keeps a
// connection to each of the three processes and rates each only against itself.
func TestABalancedAddressIsRatedPerProcessNeverAcrossProcesses(t *testing.T) {
	roundRobin := func(connection int) int { return connection % 3 }
	r := rounds(t, balancerOf(t, EndpointBalanced, threeProcesses(), roundRobin), 6)
	if r.Coverage.Read != 3 || r.Coverage.Rated != 3 {
		t.Fatalf("coverage %s, want all 3 processes behind the address rated; replicas %+v", r.Coverage, r.Replicas)
	}
	for _, rep := range r.Replicas {
		if rep.State != ReplicaOK || !strings.Contains(rep.Replica, "(process started ") {
			t.Errorf("replica %q is %s, want each process named and ok", rep.Replica, rep.State)
		}
	}
	// Each process dispatched 10 requests per scrape of it; a rate across two processes would
	// be ~1e6 requests over a fraction of a second.
	if got := dispatched(t, r); got <= 0 || got > 1e4 {
		t.Errorf("dispatched %.0f/s over %.3fs: rated across processes", got, r.Window.Seconds)
	}

	// The same address read as one replica mixes the processes once its requests reach
	// another (here every request does): this is what the test guards.
	requests := 0
	mixed := balancerPicking(t, EndpointReplicas, threeProcesses(), roundRobin, func(*http.Request) string { requests++; return strconv.Itoa(requests) })
	var worst float64
	prev := mixed.Scrape(context.Background())
	for range 3 {
		time.Sleep(20 * time.Millisecond)
		cur := mixed.Scrape(context.Background())
		worst = max(worst, dispatched(t, Analyze(prev, cur)))
		prev = cur
	}
	if worst < 1e4 {
		t.Errorf("read as one replica the balanced address gave at most %.0f/s; the bound above would not catch mixing", worst)
	}
}

// A proxy that sends each request of one connection to another process (an L7 balancer) breaks
// the connection's promise; the process's start and CPU time catch it, and no rate is taken.
func TestAProxyThatMovesRequestsBetweenProcessesIsNeverRatedAcrossThem(t *testing.T) {
	requests := 0
	s := balancerPicking(t, EndpointBalanced, threeProcesses(), func(n int) int { return n % 3 },
		func(*http.Request) string { requests++; return strconv.Itoa(requests) })
	prev := s.Scrape(context.Background())
	for range 5 {
		time.Sleep(20 * time.Millisecond)
		cur := s.Scrape(context.Background())
		r := Analyze(prev, cur)
		if got := dispatched(t, r); got < 0 || got > 1e4 {
			t.Fatalf("dispatched %.0f/s: rated across processes (replicas %+v)", got, r.Replicas)
		}
		prev = cur
	}
}

// Replicas started together share their start tick; behind an L4 balancer each keeps its own
// connection, so they are read apart.
func TestProcessesThatShareAStartTickAreReadApart(t *testing.T) {
	twins := []*fakeProcess{
		{start: 1700000000.01, base: 100, perServe: 10, cpu: 10},
		{start: 1700000000.01, base: 9e5, perServe: 10, cpu: 900},
	}
	r := rounds(t, balancerOf(t, EndpointBalanced, twins, func(connection int) int { return connection % 2 }), 5)
	if r.Coverage.Rated != 2 {
		t.Fatalf("coverage %s, replicas %+v: want both twins rated", r.Coverage, r.Replicas)
	}
	if got := dispatched(t, r); got <= 0 || got > 1e4 {
		t.Fatalf("dispatched %.0f/s: two processes of one start tick were subtracted", got)
	}
}

func TestAStickyBalancerSaysItReadOneProcessAndThatTheRestIsUnknown(t *testing.T) {
	r := rounds(t, balancerOf(t, EndpointBalanced, threeProcesses(), func(int) int { return 0 }), 4)
	if r.Coverage.Rated != 1 || r.Coverage.Believed != 0 {
		t.Fatalf("coverage %+v, want 1 process rated and the number of servers unknown", r.Coverage)
	}
	basis := r.Coverage.Basis()
	for _, want := range []string{"read 1 API server process(es) through balanced address", "how many exist is unknown", "capacity are those of the processes read"} {
		if !strings.Contains(basis, want) {
			t.Errorf("basis %q does not say %q", basis, want)
		}
	}
}

func TestAnalyzeLeavesAScrapeSeenTwiceOutAsStale(t *testing.T) {
	a0, a1 := scraped(t, "a", t0, before), scraped(t, "a", t0.Add(10*time.Second), after)
	b0 := scraped(t, "b", t0, before)
	prev, cur := Snapshot{Replicas: []ReplicaScrape{a0, b0}}, Snapshot{Replicas: []ReplicaScrape{a1, b0}}
	if Fresh(prev, cur) {
		t.Error("Fresh says b was read again; its scrape is the same")
	}
	r := Analyze(prev, cur)
	if r.Reachable() {
		t.Error("a reading with a stale replica counts as whole")
	}
	if r.Replicas[1].State != ReplicaStale || r.Coverage.Read != 1 || r.Coverage.Rated != 1 {
		t.Fatalf("replicas %+v coverage %+v, want b stale and out of the sums", r.Replicas, r.Coverage)
	}
	if got := dispatched(t, r); !near(got, 20) {
		t.Errorf("dispatched %.2f/s, want a's 20/s alone", got)
	}
	if !Fresh(prev, Snapshot{Replicas: []ReplicaScrape{a1, scraped(t, "b", t0.Add(time.Second), after)}}) {
		t.Error("Fresh says a snapshot that read both again is not")
	}
}

func TestLiveIdentityLeasesCountOnlyRecentRenewals(t *testing.T) {
	now := t0
	lease := func(ago time.Duration) *coordinationv1.Lease {
		renewed := metav1.NewMicroTime(now.Add(-ago))
		return &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{RenewTime: &renewed}}
	}
	never := &coordinationv1.Lease{}
	if got := LiveIdentityLeases([]*coordinationv1.Lease{lease(5 * time.Second), lease(20 * time.Second), lease(10 * time.Minute), never}, now); got != 2 {
		t.Errorf("%d live leases, want 2 (renewed 5 s and 20 s ago; not 10 min ago, not never)", got)
	}
}

func TestSourceOptionsNameTheFlagThatIsWrong(t *testing.T) {
	cases := []struct {
		name string
		o    SourceOptions
		want string
	}{
		{"unknown kind", SourceOptions{Kind: "etcd"}, `--metrics-source "etcd": want one of auto, replicas, balanced, prometheus`},
		{"prometheus without URL", SourceOptions{Kind: "prometheus"}, "--metrics-source prometheus needs --prometheus URL"},
		{"URL with another kind", SourceOptions{Kind: "balanced", Prometheus: "http://127.0.0.1:9090"}, "it contradicts --metrics-source balanced"},
		{"token without URL", SourceOptions{TokenFile: "/x"}, "need --prometheus URL"},
		{"not a URL", SourceOptions{Prometheus: "127.0.0.1:9090"}, "--prometheus: prometheus URL"},
		{"missing token file", SourceOptions{Prometheus: "http://127.0.0.1:9090", TokenFile: "/nonexistent/token"}, "--prometheus-token-file: stat /nonexistent/token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.o.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate() = %v, want it to say %q", err, c.want)
			}
		})
	}
	for _, ok := range []SourceOptions{{}, {Kind: "balanced"}, {Prometheus: "http://127.0.0.1:9090"}, {Kind: "prometheus", Prometheus: "https://p.example:9090", Selector: `job="kube-apiserver"`}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", ok, err)
		}
	}
}

func TestAPrometheusThatFailsIsUnreachableNotIdle(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	p, err := NewPrometheusSource(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	snap := p.Scrape(context.Background())
	r := Analyze(snap, snap)
	if r.Reachable() || len(r.Replicas) != 1 || r.Replicas[0].State != ReplicaUnreachable || !strings.Contains(r.Replicas[0].Error, "503") {
		t.Fatalf("replicas %+v: want Prometheus itself reported unreachable with its answer", r.Replicas)
	}
}
