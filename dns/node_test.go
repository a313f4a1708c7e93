package dns_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	miekgdns "github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/rest"

	bdns "github.com/bulkhead-dev/bulkhead/dns"
	"github.com/bulkhead-dev/bulkhead/dns/internal/fixture"
	"github.com/bulkhead-dev/bulkhead/dns/snapshot"
)

// deadAPI is an API server address nothing listens on: the node must serve without it.
func deadAPI(t *testing.T) *rest.Config {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return &rest.Config{Host: "http://" + addr, Timeout: time.Second}
}

func config(t *testing.T, snapshotPath string) bdns.Config {
	return bdns.Config{
		Listen:        "127.0.0.1:0",
		Snapshot:      snapshotPath,
		ClusterDomain: "cluster.local",
		TTL:           5 * time.Second,
		Metrics:       "127.0.0.1:0",
		Kube:          deadAPI(t),
	}
}

func start(t *testing.T, cfg bdns.Config) *bdns.Node {
	t.Helper()
	n, err := bdns.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return n
}

func query(t *testing.T, addr, network, name string, qtype uint16, edns bool) *miekgdns.Msg {
	t.Helper()
	q := new(miekgdns.Msg)
	q.SetQuestion(name, qtype)
	if edns {
		q.SetEdns0(1232, false)
	}
	c := &miekgdns.Client{Net: network, Timeout: 3 * time.Second}
	m, _, err := c.Exchange(q, addr)
	if err != nil {
		t.Fatalf("%s over %s: %v", name, network, err)
	}
	return m
}

func metrics(t *testing.T, n *bdns.Node) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + n.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// value is the value of the series of family name whose labels include want.
func value(t *testing.T, families map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f := families[name]
	if f == nil {
		t.Fatalf("metric %s missing", name)
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || l.GetName() == want[i] && l.GetValue() == want[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("metric %s%v missing", name, want)
	return 0
}

func httpStatus(t *testing.T, n *bdns.Node, path string) int {
	t.Helper()
	resp, err := http.Get("http://" + n.MetricsAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func writeSnapshot(t *testing.T, path string, syncedAt time.Time) {
	t.Helper()
	st := &snapshot.State{
		SyncedAt: syncedAt,
		Services: []*corev1.Service{
			fixture.ClusterIPService("lab", "svc-000", []string{"10.96.0.10"}, fixture.Port{Name: "http", Port: 80}),
			fixture.HeadlessService("lab", "svc-005", fixture.Port{Name: "http", Port: 80}),
		},
		EndpointSlices: []*discoveryv1.EndpointSlice{
			fixture.Slice("lab", "svc-005", "svc-005-a", discoveryv1.AddressTypeIPv4, []fixture.Port{{Name: "http", Port: 80}},
				fixture.Endpoint{IP: "10.244.1.7"}),
		},
	}
	if err := snapshot.Write(path, st); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotIsServedWhileTheAPIServerIsDown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dns.snapshot")
	writeSnapshot(t, path, time.Now().Add(-time.Hour))
	n := start(t, config(t, path))
	if !n.Ready() || httpStatus(t, n, "/readyz") != http.StatusOK {
		t.Fatal("not ready with a valid snapshot loaded")
	}
	for _, network := range []string{"udp", "tcp"} {
		m := query(t, n.DNSAddr(), network, "svc-000.lab.svc.cluster.local.", miekgdns.TypeA, false)
		if m.Rcode != miekgdns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].(*miekgdns.A).A.String() != "10.96.0.10" {
			t.Fatalf("answer %v", m)
		}
		m = query(t, n.DNSAddr(), network, "svc-005.lab.svc.cluster.local.", miekgdns.TypeA, true)
		if len(m.Answer) != 1 || m.Answer[0].(*miekgdns.A).A.String() != "10.244.1.7" {
			t.Fatalf("answer %v", m)
		}
	}
	// The watch notices the API is unreachable; the age tells how old the served data is. A
	// request is counted once its answer is written, so the count can trail the client's last
	// answer by a moment on a busy box: wait for it, and fail on more.
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := metrics(t, n)
		connected := value(t, fams, "bulkhead_dns_api_connected")
		answered := value(t, fams, "bulkhead_dns_requests_total", "type", "A", "rcode", "NOERROR")
		if answered > 4 {
			t.Fatalf("requests A/NOERROR %v, want 4", answered)
		}
		if connected == 0 && answered == 4 {
			if age := value(t, fams, "bulkhead_dns_snapshot_age_seconds"); age < 3600 || age > 3700 {
				t.Fatalf("snapshot age %v, want about an hour", age)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s with the API server down: api_connected %v (want 0), requests A/NOERROR %v (want 4)", connected, answered)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestCorruptSnapshotIsReportedAndNeverServed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dns.snapshot")
	writeSnapshot(t, path, time.Now())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-5] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	n := start(t, config(t, path))
	m := query(t, n.DNSAddr(), "udp", "svc-000.lab.svc.cluster.local.", miekgdns.TypeA, false)
	if m.Rcode != miekgdns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL until the first sync", miekgdns.RcodeToString[m.Rcode])
	}
	if n.Ready() || httpStatus(t, n, "/readyz") != http.StatusServiceUnavailable {
		t.Fatal("ready without any data")
	}
	if httpStatus(t, n, "/healthz") != http.StatusOK {
		t.Fatal("not healthy")
	}
	if got := value(t, metrics(t, n), "bulkhead_dns_snapshot_load_errors_total", "reason", "checksum"); got != 1 {
		t.Fatalf("load errors %v, want 1 with reason checksum", got)
	}
}

func TestNamesOutsideTheZoneAreForwardedAndServedStaleWithEDE(t *testing.T) {
	upstreamAddr, stop := startResolver(t)
	path := filepath.Join(t.TempDir(), "dns.snapshot")
	writeSnapshot(t, path, time.Now())
	cfg := config(t, path)
	cfg.Upstream = upstreamAddr
	n := start(t, cfg)
	m := query(t, n.DNSAddr(), "udp", "www.example.org.", miekgdns.TypeA, true)
	if m.Rcode != miekgdns.RcodeSuccess || len(m.Answer) != 1 || !m.RecursionAvailable {
		t.Fatalf("answer %v", m)
	}
	stop()
	time.Sleep(1100 * time.Millisecond)
	for _, network := range []string{"udp", "tcp"} {
		m = query(t, n.DNSAddr(), network, "www.example.org.", miekgdns.TypeA, true)
		if m.Rcode != miekgdns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].Header().Ttl != 30 || !hasEDE(m, miekgdns.ExtendedErrorCodeStaleAnswer) {
			t.Fatalf("answer over %s %v, want a stale one with TTL 30 and EDE 3", network, m)
		}
	}
	if got := value(t, metrics(t, n), "bulkhead_dns_upstream_stale_answers_total"); got != 2 {
		t.Fatalf("stale answers %v, want 2", got)
	}
	m = query(t, n.DNSAddr(), "udp", "never.example.org.", miekgdns.TypeA, false)
	if m.Rcode != miekgdns.RcodeServerFailure {
		t.Fatalf("rcode %s for an uncached name with the upstream down, want SERVFAIL", miekgdns.RcodeToString[m.Rcode])
	}
}

func hasEDE(m *miekgdns.Msg, code uint16) bool {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*miekgdns.EDNS0_EDE); ok && e.InfoCode == code {
				return true
			}
		}
	}
	return false
}

// startResolver runs a real DNS server on 127.0.0.1 answering every A query with TTL 1.
func startResolver(t *testing.T) (string, func()) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &miekgdns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: miekgdns.HandlerFunc(func(w miekgdns.ResponseWriter, req *miekgdns.Msg) {
			m := new(miekgdns.Msg)
			m.SetReply(req)
			rr, _ := miekgdns.NewRR(req.Question[0].Name + " 1 IN A 192.0.2.44")
			m.Answer = []miekgdns.RR{rr}
			w.WriteMsg(m)
		})}
	go srv.ActivateAndServe()
	<-started
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			srv.Shutdown()
		}
	}
	t.Cleanup(stop)
	return pc.LocalAddr().String(), stop
}

func TestBadFlagsAreRejectedNamingTheFlag(t *testing.T) {
	dir := t.TempDir()
	good := config(t, filepath.Join(dir, "dns.snapshot"))
	for _, tc := range []struct {
		name   string
		change func(*bdns.Config)
		want   string
	}{
		{"listen without port", func(c *bdns.Config) { c.Listen = "169.254.20.10" }, "--listen"},
		{"no snapshot", func(c *bdns.Config) { c.Snapshot = "" }, "--snapshot is required"},
		{"snapshot dir missing", func(c *bdns.Config) { c.Snapshot = filepath.Join(dir, "nope", "s") }, "does not exist"},
		{"snapshot is a dir", func(c *bdns.Config) { c.Snapshot = dir }, "is a directory"},
		{"bad domain", func(c *bdns.Config) { c.ClusterDomain = "a..b" }, "--cluster-domain"},
		{"bad upstream", func(c *bdns.Config) { c.Upstream = "dns.google" }, "--upstream"},
		{"fractional ttl", func(c *bdns.Config) { c.TTL = 1500 * time.Millisecond }, "--ttl"},
		{"zero ttl", func(c *bdns.Config) { c.TTL = 0 }, "--ttl"},
		{"metrics without port", func(c *bdns.Config) { c.Metrics = "localhost" }, "--metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.change(&c)
			_, err := bdns.Start(context.Background(), c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config rejected: %v", err)
	}
	if _, err := os.Stat(good.Snapshot); !os.IsNotExist(err) {
		t.Fatal("a rejected start created files")
	}
}

// A restarted node-local DNS must not go quiet while it shuts down: with the API server down,
// stopping the watch waits out client-go's retry back-off.
func TestAnswersUntilShutdownEndsWhileTheAPIServerIsDown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dns.snapshot")
	writeSnapshot(t, path, time.Now().Add(-time.Hour))
	n, err := bdns.Start(context.Background(), config(t, path))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the watch has failed and is backing off
	stopped := make(chan error, 1)
	began := time.Now()
	go func() { stopped <- n.Stop() }()
	client := &miekgdns.Client{Net: "udp", Timeout: time.Second}
	answered := 0
	for done := false; !done; {
		q := new(miekgdns.Msg)
		q.SetQuestion("svc-000.lab.svc.cluster.local.", miekgdns.TypeA)
		select {
		case err := <-stopped:
			if err != nil {
				t.Fatalf("stop: %v", err)
			}
			done = true
			continue
		default:
		}
		m, _, err := client.Exchange(q, n.DNSAddr())
		if err != nil {
			// The servers close as the last act of shutdown; Stop returns right after. A query
			// that lands in between is refused: it must be followed by the end of Stop.
			select {
			case err := <-stopped:
				if err != nil {
					t.Fatalf("stop: %v", err)
				}
				done = true
				continue
			case <-time.After(time.Second):
			}
			t.Fatalf("query %d, %s into shutdown: %v, and shutdown went on for another second", answered+1, time.Since(began).Round(time.Millisecond), err)
		}
		if m.Rcode != miekgdns.RcodeSuccess || len(m.Answer) != 1 {
			t.Fatalf("answer during shutdown: %v", m)
		}
		answered++
	}
	t.Logf("%d queries answered during a %s shutdown", answered, time.Since(began).Round(time.Millisecond))
	if answered == 0 {
		t.Fatal("no query was answered during shutdown")
	}
}
