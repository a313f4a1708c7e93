package upstream

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	testingclock "k8s.io/utils/clock/testing"
)

// resolver is a real DNS server on 127.0.0.1 that the tests can silence, hold and stop.
type resolver struct {
	addr    string
	queries atomic.Int64
	ttl     atomic.Uint32
	// silent: count queries, answer none.
	silent atomic.Bool
	// held: answer only once release is closed (releaseHeld), like a slow resolver.
	held        atomic.Bool
	release     chan struct{}
	releaseOnce sync.Once
	udp         *dns.Server
	tcp         *dns.Server
	stopped     sync.Once
}

func startResolver(t testing.TB) *resolver {
	t.Helper()
	r := &resolver{release: make(chan struct{})}
	r.ttl.Store(1)
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		r.queries.Add(1)
		if r.silent.Load() {
			return
		}
		if r.held.Load() {
			<-r.release
		}
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		switch {
		case strings.HasPrefix(q.Name, "missing."):
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{mustRR(t, "example. 60 IN SOA ns.example. h.example. 1 2 3 4 2")}
		case strings.HasPrefix(q.Name, "big."):
			for i := range 80 {
				m.Answer = append(m.Answer, mustRR(t, fmt.Sprintf("%s %d IN A 192.0.2.%d", q.Name, r.ttl.Load(), i)))
			}
		default:
			m.Answer = []dns.RR{mustRR(t, fmt.Sprintf("%s %d IN A 192.0.2.1", q.Name, r.ttl.Load()))}
		}
		if w.LocalAddr().Network() == "udp" {
			size := 512
			if opt := req.IsEdns0(); opt != nil {
				size = int(opt.UDPSize())
			}
			m.Truncate(min(size, 512))
		}
		w.WriteMsg(m)
	})
	// The TCP port must equal the UDP port the kernel picked; another process may hold it.
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ln == nil; attempt++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err != nil {
			pc.Close()
			if attempt == 10 {
				t.Fatal(err)
			}
		}
	}
	r.addr = pc.LocalAddr().String()
	started := make(chan struct{}, 2)
	r.udp = &dns.Server{PacketConn: pc, Handler: handler, NotifyStartedFunc: func() { started <- struct{}{} }}
	r.tcp = &dns.Server{Listener: ln, Handler: handler, NotifyStartedFunc: func() { started <- struct{}{} }}
	go r.udp.ActivateAndServe()
	go r.tcp.ActivateAndServe()
	<-started
	<-started
	t.Cleanup(r.stop)
	t.Cleanup(r.releaseHeld) // runs first: held handlers must return for the servers to stop
	return r
}

func (r *resolver) releaseHeld() { r.releaseOnce.Do(func() { close(r.release) }) }

func (r *resolver) stop() {
	r.stopped.Do(func() {
		r.udp.Shutdown()
		r.tcp.Shutdown()
	})
}

func mustRR(t testing.TB, s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func newForwarder(t testing.TB, cfg Config) (*Forwarder, *Metrics) {
	t.Helper()
	cfg.Metrics = NewMetrics(prometheus.NewRegistry())
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f, cfg.Metrics
}

func resolve(t testing.TB, f *Forwarder, name string) (*dns.Msg, error) {
	t.Helper()
	req := new(dns.Msg)
	req.SetQuestion(name, dns.TypeA)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return f.Resolve(ctx, req)
}

func isStale(m *dns.Msg) bool {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if ede, ok := o.(*dns.EDNS0_EDE); ok && ede.InfoCode == dns.ExtendedErrorCodeStaleAnswer {
				return true
			}
		}
	}
	return false
}

// fakeClock starts the forwarder's clock at a fixed time; only Step moves it.
func fakeClock() *testingclock.FakeClock {
	return testingclock.NewFakeClock(time.Date(2024, 12, 11, 15, 12, 0, 0, time.UTC))
}

func TestAnswersAreCachedUntilTheirTTL(t *testing.T) {
	r := startResolver(t)
	r.ttl.Store(60)
	clock := fakeClock()
	f, _ := newForwarder(t, Config{Servers: []string{r.addr}, Clock: clock})
	for range 3 {
		m, err := resolve(t, f, "www.example.")
		if err != nil || len(m.Answer) != 1 || isStale(m) {
			t.Fatalf("answer %v err %v", m, err)
		}
	}
	clock.Step(59 * time.Second)
	m, err := resolve(t, f, "www.example.")
	if err != nil || isStale(m) || m.Answer[0].Header().Ttl != 1 {
		t.Fatalf("answer %v err %v, want the cached record with 1 s of its TTL left", m, err)
	}
	if n := r.queries.Load(); n != 1 {
		t.Fatalf("resolver asked %d times within the TTL, want once", n)
	}
	clock.Step(time.Second)
	if m, err := resolve(t, f, "www.example."); err != nil || isStale(m) || m.Answer[0].Header().Ttl != 60 {
		t.Fatalf("answer %v err %v, want a fresh record once the TTL ran out", m, err)
	}
	if n := r.queries.Load(); n != 2 {
		t.Fatalf("resolver asked %d times, want twice: the TTL ran out once", n)
	}
}

func TestExpiredEntryIsRefreshedNotServedStaleWhileTheResolverWorks(t *testing.T) {
	r := startResolver(t)
	clock := fakeClock()
	f, _ := newForwarder(t, Config{Servers: []string{r.addr}, Clock: clock})
	resolve(t, f, "www.example.")
	clock.Step(1100 * time.Millisecond)
	m, err := resolve(t, f, "www.example.")
	if err != nil || isStale(m) || m.Answer[0].Header().Ttl != 1 {
		t.Fatalf("answer %v err %v, want a fresh one", m, err)
	}
	if n := r.queries.Load(); n != 2 {
		t.Fatalf("resolver asked %d times, want twice", n)
	}
}

func TestStoppedResolverGetsStaleAnswersWithEDE3AndTTL30(t *testing.T) {
	r := startResolver(t)
	clock := fakeClock()
	f, metrics := newForwarder(t, Config{Servers: []string{r.addr}, Timeout: 300 * time.Millisecond, Clock: clock})
	if _, err := resolve(t, f, "www.example."); err != nil {
		t.Fatal(err)
	}
	if _, err := resolve(t, f, "missing.example."); err != nil {
		t.Fatal(err)
	}
	r.stop()
	clock.Step(2100 * time.Millisecond) // past the record's TTL (1 s) and the SOA minimum (2 s)
	m, err := resolve(t, f, "www.example.")
	if err != nil {
		t.Fatal(err)
	}
	if !isStale(m) || len(m.Answer) != 1 || m.Answer[0].Header().Ttl != 30 {
		t.Fatalf("answer %v, want the old record with TTL 30 and EDE 3", m)
	}
	m, err = resolve(t, f, "missing.example.")
	if err != nil || m.Rcode != dns.RcodeNameError || !isStale(m) {
		t.Fatalf("answer %v err %v, want a stale NXDOMAIN", m, err)
	}
	if got := counter(t, metrics.stale); got != 2 {
		t.Fatalf("stale answers metric %v, want 2", got)
	}
	if _, err := resolve(t, f, "never-seen.example."); err == nil {
		t.Fatal("a name never cached resolved with the resolver down")
	}
}

func TestFailedRefreshIsNotRetriedWithinTheRecheckTime(t *testing.T) {
	r := startResolver(t)
	clock := fakeClock()
	f, _ := newForwarder(t, Config{Servers: []string{r.addr}, Timeout: 200 * time.Millisecond, Clock: clock})
	resolve(t, f, "www.example.")
	r.silent.Store(true)
	clock.Step(1100 * time.Millisecond)
	for range 5 {
		if m, err := resolve(t, f, "www.example."); err != nil || !isStale(m) {
			t.Fatalf("answer %v err %v, want stale", m, err)
		}
	}
	// One refresh timed out; the next four were answered from stale without a query.
	if n := r.queries.Load(); n != 2 {
		t.Fatalf("resolver asked %d times, want 2 (first fill, one failed refresh)", n)
	}
	clock.Step(DefaultFailureRecheck - time.Nanosecond)
	if m, err := resolve(t, f, "www.example."); err != nil || !isStale(m) || r.queries.Load() != 2 {
		t.Fatalf("answer %v err %v after %d queries, want stale without asking within the recheck time", m, err, r.queries.Load())
	}
	clock.Step(time.Nanosecond)
	if m, err := resolve(t, f, "www.example."); err != nil || !isStale(m) || r.queries.Load() != 3 {
		t.Fatalf("answer %v err %v after %d queries, want stale after asking again once the recheck time passed", m, err, r.queries.Load())
	}
}

func TestSlowResolverGetsStaleAnswerWhenTheClientResponseTimerFires(t *testing.T) {
	r := startResolver(t)
	clock := fakeClock()
	// The resolver answers only when the test lets it; a long socket deadline keeps the real
	// clock out of the test.
	f, metrics := newForwarder(t, Config{Servers: []string{r.addr}, Timeout: time.Minute, Clock: clock})
	resolve(t, f, "www.example.")
	clock.Step(1100 * time.Millisecond)
	r.held.Store(true)

	type result struct {
		m   *dns.Msg
		err error
	}
	answered := make(chan result, 1)
	go func() {
		req := new(dns.Msg)
		req.SetQuestion("www.example.", dns.TypeA)
		m, err := f.Resolve(context.Background(), req)
		answered <- result{m, err}
	}()
	// The client waits on its response timer while the refresh is held at the resolver.
	deadline := time.Now().Add(10 * time.Second)
	for !clock.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("the forwarder never armed its client response timer")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case res := <-answered:
		t.Fatalf("answered %v (err %v) before the client response timer fired", res.m, res.err)
	default:
	}
	clock.Step(DefaultClientResponseTimer)
	select {
	case res := <-answered:
		if res.err != nil || !isStale(res.m) {
			t.Fatalf("answer %v err %v, want stale once the timer fired", res.m, res.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer after the client response timer fired")
	}

	// The refresh went on in the background; once the resolver answers it refills the cache.
	r.releaseHeld()
	if m, err := resolve(t, f, "www.example."); err != nil || isStale(m) {
		t.Fatalf("answer %v err %v, want the refreshed fresh entry", m, err)
	}
	if n, stale := r.queries.Load(), counter(t, metrics.stale); n != 2 || stale != 1 {
		t.Fatalf("resolver asked %d times, %v stale answers; want 2 (fill, one refresh the next client joined) and 1", n, stale)
	}
}

func TestStaleDataOlderThanMaxStaleIsNotServed(t *testing.T) {
	r := startResolver(t)
	clock := fakeClock()
	f, _ := newForwarder(t, Config{Servers: []string{r.addr}, Timeout: 200 * time.Millisecond, Clock: clock})
	resolve(t, f, "www.example.")
	r.stop()
	clock.Step(time.Second + DefaultMaxStale) // the TTL, then exactly the longest stale life
	if m, err := resolve(t, f, "www.example."); err != nil || !isStale(m) {
		t.Fatalf("answer %v err %v, want stale at the end of max stale", m, err)
	}
	clock.Step(DefaultFailureRecheck) // past max stale, even for an entry whose refresh failed
	if m, err := resolve(t, f, "www.example."); err == nil {
		t.Fatalf("answer %v, want an error past max stale", m)
	}
}

func TestTruncatedUDPAnswerIsFetchedOverTCP(t *testing.T) {
	r := startResolver(t)
	f, _ := newForwarder(t, Config{Servers: []string{r.addr}})
	m, err := resolve(t, f, "big.example.")
	if err != nil || m.Truncated || len(m.Answer) != 80 {
		t.Fatalf("tc=%v answers=%d err=%v, want 80 records", m != nil && m.Truncated, len(m.Answer), err)
	}
}

func TestSecondResolverIsAskedWhenTheFirstFails(t *testing.T) {
	dead := startResolver(t)
	dead.stop()
	r := startResolver(t)
	f, _ := newForwarder(t, Config{Servers: []string{dead.addr, r.addr}, Timeout: 300 * time.Millisecond})
	if m, err := resolve(t, f, "www.example."); err != nil || len(m.Answer) != 1 {
		t.Fatalf("answer %v err %v", m, err)
	}
}

func TestDefaultsFollowRFC8767(t *testing.T) {
	f, err := New(Config{Servers: []string{"127.0.0.1:53"}, Metrics: NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	c := f.cfg
	if c.ClientResponseTimer != 1800*time.Millisecond || c.StaleTTL != 30 || c.MaxStale != 24*time.Hour || c.FailureRecheck != 30*time.Second {
		t.Fatalf("defaults %+v", c)
	}
}

func TestParseServers(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	os.WriteFile(conf, []byte("search example\nnameserver 10.0.0.2\nnameserver fd00::53\noptions ndots:5\n"), 0o600)
	empty := filepath.Join(dir, "empty.conf")
	os.WriteFile(empty, []byte("search example\n"), 0o600)
	for _, tc := range []struct {
		spec, want, err string
	}{
		{spec: conf, want: "10.0.0.2:53 [fd00::53]:53"},
		{spec: "1.1.1.1, 127.0.0.1:5353", want: "1.1.1.1:53 127.0.0.1:5353"},
		{spec: "", err: "upstream is empty"},
		{spec: "dns.example", err: "neither an IP"},
		{spec: empty, err: "lists no nameserver"},
		{spec: filepath.Join(dir, "absent"), err: "absent"},
	} {
		got, err := ParseServers(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("%q: %v %v, want %s", tc.spec, got, err, tc.want)
		}
	}
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil || len(families) != 1 {
		t.Fatalf("gather: %v", err)
	}
	return families[0].Metric[0].Counter.GetValue()
}
