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
)

// resolver is a real DNS server on 127.0.0.1 that the tests can slow down and stop.
type resolver struct {
	addr    string
	queries atomic.Int64
	delay   atomic.Int64 // nanoseconds
	ttl     atomic.Uint32
	udp     *dns.Server
	tcp     *dns.Server
	stopped sync.Once
}

func startResolver(t *testing.T) *resolver {
	t.Helper()
	r := &resolver{}
	r.ttl.Store(1)
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		r.queries.Add(1)
		time.Sleep(time.Duration(r.delay.Load()))
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
	return r
}

func (r *resolver) stop() {
	r.stopped.Do(func() {
		r.udp.Shutdown()
		r.tcp.Shutdown()
	})
}

func mustRR(t *testing.T, s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func newForwarder(t *testing.T, cfg Config) (*Forwarder, *Metrics) {
	t.Helper()
	cfg.Metrics = NewMetrics(prometheus.NewRegistry())
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f, cfg.Metrics
}

func resolve(t *testing.T, f *Forwarder, name string) (*dns.Msg, error) {
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

func TestAnswersAreCachedUntilTheirTTL(t *testing.T) {
	r := startResolver(t)
	r.ttl.Store(60)
	f, _ := newForwarder(t, Config{Servers: []string{r.addr}})
	for range 3 {
		m, err := resolve(t, f, "www.example.")
		if err != nil || len(m.Answer) != 1 || isStale(m) {
			t.Fatalf("answer %v err %v", m, err)
		}
	}
	if n := r.queries.Load(); n != 1 {
		t.Fatalf("resolver asked %d times, want once", n)
	}
}

func TestExpiredEntryIsRefreshedNotServedStaleWhileTheResolverWorks(t *testing.T) {
	r := startResolver(t)
	f, _ := newForwarder(t, Config{Servers: []string{r.addr}})
	resolve(t, f, "www.example.")
	time.Sleep(1100 * time.Millisecond)
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
	f, metrics := newForwarder(t, Config{Servers: []string{r.addr}, Timeout: 300 * time.Millisecond})
	if _, err := resolve(t, f, "www.example."); err != nil {
		t.Fatal(err)
	}
	if _, err := resolve(t, f, "missing.example."); err != nil {
		t.Fatal(err)
	}
	r.stop()
	time.Sleep(2100 * time.Millisecond)
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
	f, _ := newForwarder(t, Config{Servers: []string{r.addr}, Timeout: 200 * time.Millisecond})
	resolve(t, f, "www.example.")
	r.delay.Store(int64(time.Second))
	time.Sleep(1100 * time.Millisecond)
	for range 5 {
		if m, err := resolve(t, f, "www.example."); err != nil || !isStale(m) {
			t.Fatalf("answer %v err %v, want stale", m, err)
		}
	}
	// One refresh timed out; the next four were answered from stale without a query.
	if n := r.queries.Load(); n != 2 {
		t.Fatalf("resolver asked %d times, want 2 (first fill, one failed refresh)", n)
	}
}

func TestSlowResolverGetsStaleAnswerAfterTheClientResponseTimer(t *testing.T) {
	r := startResolver(t)
	f, _ := newForwarder(t, Config{Servers: []string{r.addr}, ClientResponseTimer: 300 * time.Millisecond})
	resolve(t, f, "www.example.")
	time.Sleep(1100 * time.Millisecond)
	r.delay.Store(int64(900 * time.Millisecond))
	start := time.Now()
	m, err := resolve(t, f, "www.example.")
	took := time.Since(start)
	if err != nil || !isStale(m) {
		t.Fatalf("answer %v err %v, want stale", m, err)
	}
	if took < 250*time.Millisecond || took > 800*time.Millisecond {
		t.Fatalf("stale answer after %v, want about the 300ms client response timer", took)
	}
	// The refresh went on in the background and refilled the cache.
	time.Sleep(900 * time.Millisecond)
	if m, err := resolve(t, f, "www.example."); err != nil || isStale(m) {
		t.Fatalf("answer %v err %v, want the refreshed fresh entry", m, err)
	}
}

func TestStaleDataOlderThanMaxStaleIsNotServed(t *testing.T) {
	r := startResolver(t)
	f, _ := newForwarder(t, Config{Servers: []string{r.addr}, Timeout: 200 * time.Millisecond, MaxStale: 300 * time.Millisecond})
	resolve(t, f, "www.example.")
	r.stop()
	time.Sleep(1500 * time.Millisecond)
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
