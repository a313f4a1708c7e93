package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
)

// Defaults from RFC 8767 §5 and common resolver practice.
const (
	DefaultClientResponseTimer = 1800 * time.Millisecond
	DefaultStaleTTL            = 30
	DefaultMaxStale            = 24 * time.Hour
	DefaultFailureRecheck      = 30 * time.Second
	DefaultTimeout             = 2 * time.Second
	DefaultMaxTTL              = time.Hour
	DefaultMaxEntries          = 10000
)

// Config configures a Forwarder. Zero durations take the defaults above.
type Config struct {
	// Servers are resolver addresses (host:port), asked in order.
	Servers []string
	// Timeout bounds one attempt at one server.
	Timeout             time.Duration
	ClientResponseTimer time.Duration
	StaleTTL            uint32
	MaxStale            time.Duration
	FailureRecheck      time.Duration
	MaxTTL              time.Duration
	MaxEntries          int
	Metrics             *Metrics
	// Clock reads the time for TTLs, stale windows and the client response timer; nil is the
	// real clock. Tests inject a fake one. Timeout, a deadline on the socket, is always real.
	Clock clock.Clock
}

// Metrics are the forwarder's Prometheus metrics.
type Metrics struct {
	hits, misses, stale, failures prometheus.Counter
	entries                       prometheus.Gauge
}

// NewMetrics registers the forwarder's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		hits:     prometheus.NewCounter(prometheus.CounterOpts{Name: "bulkhead_dns_upstream_cache_hits_total", Help: "Upstream names answered from a fresh cache entry."}),
		misses:   prometheus.NewCounter(prometheus.CounterOpts{Name: "bulkhead_dns_upstream_cache_misses_total", Help: "Upstream names that needed a query to a resolver."}),
		stale:    prometheus.NewCounter(prometheus.CounterOpts{Name: "bulkhead_dns_upstream_stale_answers_total", Help: "Answers served stale (RFC 8767) because the resolvers failed or were slow."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulkhead_dns_upstream_failures_total", Help: "Refreshes where no resolver gave a usable answer."}),
		entries:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulkhead_dns_upstream_cache_entries", Help: "Entries in the upstream cache."}),
	}
	reg.MustRegister(m.hits, m.misses, m.stale, m.failures, m.entries)
	return m
}

type key struct {
	name         string
	qtype, class uint16
}

type entry struct {
	msg      *dns.Msg
	stored   time.Time
	expires  time.Time
	failedAt time.Time
}

type flight struct {
	done chan struct{}
	msg  *dns.Msg
	err  error
}

// Forwarder resolves names through upstream resolvers with a serve-stale cache.
type Forwarder struct {
	cfg     Config
	mu      sync.Mutex
	cache   map[key]*entry
	flights map[key]*flight
}

// New validates cfg and returns a Forwarder.
func New(cfg Config) (*Forwarder, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("upstream: no resolver addresses")
	}
	if cfg.Metrics == nil {
		return nil, errors.New("upstream: metrics are required")
	}
	setDefault(&cfg.Timeout, DefaultTimeout)
	setDefault(&cfg.ClientResponseTimer, DefaultClientResponseTimer)
	setDefault(&cfg.MaxStale, DefaultMaxStale)
	setDefault(&cfg.FailureRecheck, DefaultFailureRecheck)
	setDefault(&cfg.MaxTTL, DefaultMaxTTL)
	if cfg.StaleTTL == 0 {
		cfg.StaleTTL = DefaultStaleTTL
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Forwarder{cfg: cfg, cache: map[key]*entry{}, flights: map[key]*flight{}}, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}

// Resolve answers req (one question) from the cache, the resolvers, or stale data.
func (f *Forwarder) Resolve(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	if len(req.Question) != 1 {
		return nil, errors.New("upstream: query must have exactly one question")
	}
	q := req.Question[0]
	k := key{name: strings.ToLower(q.Name), qtype: q.Qtype, class: q.Qclass}
	now := f.cfg.Clock.Now()
	// e is a copy: a refresh running elsewhere may update the cached entry.
	var e *entry
	f.mu.Lock()
	if cached := f.cache[k]; cached != nil {
		c := *cached
		e = &c
	}
	f.mu.Unlock()
	if e != nil && now.Before(e.expires) {
		f.cfg.Metrics.hits.Inc()
		return aged(e.msg, uint32(e.expires.Sub(now)/time.Second)), nil
	}
	f.cfg.Metrics.misses.Inc()
	usable := e != nil && now.Sub(e.expires) <= f.cfg.MaxStale
	if usable && !e.failedAt.IsZero() && now.Sub(e.failedAt) < f.cfg.FailureRecheck {
		return f.staleAnswer(e), nil
	}
	fl := f.refresh(k, q, req.CheckingDisabled)
	var timer <-chan time.Time
	if usable {
		t := f.cfg.Clock.NewTimer(f.cfg.ClientResponseTimer)
		defer t.Stop()
		timer = t.C()
	}
	select {
	case <-fl.done:
		if fl.err == nil {
			return fl.msg.Copy(), nil
		}
		if usable {
			return f.staleAnswer(e), nil
		}
		return nil, fl.err
	case <-timer:
		return f.staleAnswer(e), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("upstream %s: %w", q.Name, ctx.Err())
	}
}

// refresh starts (or joins) the upstream query for k; it outlives the client that started it.
func (f *Forwarder) refresh(k key, q dns.Question, cd bool) *flight {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.flights[k]; fl != nil {
		return fl
	}
	fl := &flight{done: make(chan struct{})}
	f.flights[k] = fl
	go func() {
		msg, err := f.exchange(q, cd)
		now := f.cfg.Clock.Now()
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.flights, k)
		if err != nil {
			f.cfg.Metrics.failures.Inc()
			if e := f.cache[k]; e != nil {
				e.failedAt = now
			}
		} else {
			f.store(k, msg, now)
		}
		fl.msg, fl.err = msg, err
		close(fl.done)
	}()
	return fl
}

// exchange asks each resolver in turn, over TCP when the UDP answer was truncated.
func (f *Forwarder) exchange(q dns.Question, cd bool) (*dns.Msg, error) {
	req := new(dns.Msg)
	req.Question = []dns.Question{q}
	req.Id = dns.Id()
	req.RecursionDesired = true
	req.CheckingDisabled = cd
	req.SetEdns0(1232, false)
	var errs []error
	for _, server := range f.cfg.Servers {
		c := &dns.Client{Net: "udp", Timeout: f.cfg.Timeout, UDPSize: 1232}
		resp, _, err := c.Exchange(req, server)
		if err == nil && resp.Truncated {
			c.Net = "tcp"
			resp, _, err = c.Exchange(req, server)
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", server, err))
		case resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError:
			errs = append(errs, fmt.Errorf("%s: answered %s", server, dns.RcodeToString[resp.Rcode]))
		default:
			return resp, nil
		}
	}
	return nil, fmt.Errorf("upstream %s: every resolver failed: %w", q.Name, errors.Join(errs...))
}

// store caches msg for its TTL; it is called with f.mu held.
func (f *Forwarder) store(k key, msg *dns.Msg, now time.Time) {
	ttl := min(cacheTTL(msg), f.cfg.MaxTTL)
	if _, ok := f.cache[k]; !ok && len(f.cache) >= f.cfg.MaxEntries {
		f.evict(now)
	}
	f.cache[k] = &entry{msg: msg, stored: now, expires: now.Add(ttl)}
	f.cfg.Metrics.entries.Set(float64(len(f.cache)))
}

// evict drops entries too old even to serve stale, or else one arbitrary entry.
func (f *Forwarder) evict(now time.Time) {
	for k, e := range f.cache {
		if now.Sub(e.expires) > f.cfg.MaxStale {
			delete(f.cache, k)
		}
	}
	if len(f.cache) < f.cfg.MaxEntries {
		return
	}
	for k := range f.cache {
		delete(f.cache, k)
		return
	}
}

// cacheTTL is the lowest answer TTL, or for negative answers the SOA's negative TTL (RFC 2308).
func cacheTTL(msg *dns.Msg) time.Duration {
	ttl := uint32(0)
	found := false
	for _, rr := range msg.Answer {
		if !found || rr.Header().Ttl < ttl {
			ttl, found = rr.Header().Ttl, true
		}
	}
	if !found {
		for _, rr := range msg.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl, found = min(soa.Hdr.Ttl, soa.Minttl), true
			}
		}
	}
	return time.Duration(ttl) * time.Second
}

// aged returns a copy of msg with TTLs no higher than remaining.
func aged(msg *dns.Msg, remaining uint32) *dns.Msg {
	out := msg.Copy()
	for _, section := range [][]dns.RR{out.Answer, out.Ns, out.Extra} {
		for _, rr := range section {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT && h.Ttl > remaining {
				h.Ttl = remaining
			}
		}
	}
	return out
}

func (f *Forwarder) staleAnswer(e *entry) *dns.Msg {
	f.cfg.Metrics.stale.Inc()
	out := e.msg.Copy()
	for _, section := range [][]dns.RR{out.Answer, out.Ns, out.Extra} {
		for _, rr := range section {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT {
				h.Ttl = f.cfg.StaleTTL
			}
		}
	}
	opt := out.IsEdns0()
	if opt == nil {
		out.SetEdns0(1232, false)
		opt = out.IsEdns0()
	}
	opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeStaleAnswer})
	return out
}

// ParseServers reads the --upstream flag: a resolv.conf path, or comma-separated addresses
// (IP or IP:port; port 53 by default).
func ParseServers(spec string) ([]string, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New("upstream is empty: give a resolv.conf path or resolver addresses")
	}
	if strings.ContainsRune(spec, '/') {
		conf, err := dns.ClientConfigFromFile(spec)
		if err != nil {
			return nil, fmt.Errorf("upstream resolv.conf %s: %w", spec, err)
		}
		if len(conf.Servers) == 0 {
			return nil, fmt.Errorf("upstream resolv.conf %s lists no nameserver", spec)
		}
		var out []string
		for _, s := range conf.Servers {
			out = append(out, net.JoinHostPort(s, conf.Port))
		}
		return out, nil
	}
	var out []string
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if ip, err := netip.ParseAddr(part); err == nil {
			out = append(out, netip.AddrPortFrom(ip, 53).String())
			continue
		}
		ap, err := netip.ParseAddrPort(part)
		if err != nil {
			if _, statErr := os.Stat(part); statErr == nil {
				return nil, fmt.Errorf("upstream %q: give a file as a path containing '/', e.g. ./%s", part, part)
			}
			return nil, fmt.Errorf("upstream %q is neither an IP, an IP:port nor a resolv.conf path", part)
		}
		out = append(out, ap.String())
	}
	return out, nil
}
