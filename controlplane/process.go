package controlplane

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptrace"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/client-go/rest"
)

// Behind one balanced address (a managed control plane's load balancer or VIP) every connection
// may reach another kube-apiserver process, and nothing in its /metrics names the process:
// process_start_time_seconds counts 10-ms clock ticks, and replicas started together share it
// (the lab's three do, run after run). A TCP connection, though, reaches one process for its
// whole life. So a balanced address is read over a few kept connections — slots — each scraped
// once a round, and a rate is only ever taken between two scrapes over the same connection: the
// same process by construction, whatever the balancer does. A slot whose request needed a new
// connection (the old one closed: a GOAWAY, an idle timeout, a restart) starts a new generation,
// named apart, so that its first scrape is rated against nothing. Two slots that reached the same
// process would count it twice: the later is closed, and another opened. Slots are opened until
// as many distinct processes answered as the identity Leases count, at most 2n+1 a round for n;
// a balancer with session affinity shows one process however many slots, and the reading says
// how many it read.

// slot is one kept connection to a balanced address.
type slot struct {
	id, generation int
	transport      *http.Transport
	client         *http.Client
	// last is the slot's previous answer, to catch a proxy that hands one connection's requests
	// to several processes (an L7 balancer).
	last *ReplicaScrape
}

// balancedAddress keeps the slots of one balanced address.
type balancedAddress struct {
	address string
	slots   []*slot
	nextID  int
}

// openSlot makes a client that keeps one connection, with cfg's TLS and credentials.
func (b *balancedAddress) openSlot(cfg *rest.Config) (*slot, error) {
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("TLS config for %s: %w", cfg.Host, err)
	}
	transport := &http.Transport{TLSClientConfig: tlsConfig, MaxConnsPerHost: 1, Proxy: http.ProxyFromEnvironment}
	if cfg.Dial != nil {
		transport.DialContext = cfg.Dial
	}
	rt, err := rest.HTTPWrappersForConfig(cfg, transport)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", cfg.Host, err)
	}
	b.nextID++
	return &slot{id: b.nextID, transport: transport, client: &http.Client{Transport: rt}}, nil
}

func (sl *slot) close() { sl.transport.CloseIdleConnections() }

// scrapeSlot reads the address over the slot's connection and names the answer after the slot's
// connection and the process's start.
func (s *Scraper) scrapeSlot(ctx context.Context, address string, sl *slot) ReplicaScrape {
	reused := true
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }})
	r := s.scrape(ctx, sl.client, address)
	if !reused || (r.Err == nil && sl.last != nil && !couldFollow(*sl.last, r)) {
		sl.generation++ // a new connection, or another process on the old one
	}
	if r.Err == nil {
		sl.last = &r
	}
	started := "unknown"
	if t, ok := processStart(r.Families); ok {
		started = t.Format("2006-01-02T15:04:05.00Z")
	}
	r.Replica = fmt.Sprintf("%s (process started %s, connection %d.%d)", address, started, sl.id, sl.generation)
	return r
}

// processStart is when the process behind a scrape started, if its metrics say.
func processStart(families map[string]*dto.MetricFamily) (time.Time, bool) {
	m := families[metricProcessStart].GetMetric()
	if len(m) == 0 || value(m[0]) <= 0 {
		return time.Time{}, false
	}
	ticks := int64(math.Round(value(m[0]) * 100)) // whole 10-ms ticks: float error must not move a tick
	return time.Unix(0, ticks*int64(10*time.Millisecond)).UTC(), true
}

// sameProcess says whether two scrapes of one round could have come from the same process: the
// same start tick, and CPU times no further apart than its cores could burn between the two.
// Twins of one tick whose CPU times lie that close are taken for one (their load then counts
// once, and the reading reads fewer processes than exist) — never the other way round.
func sameProcess(a, b ReplicaScrape) bool {
	ta, okA := processStart(a.Families)
	tb, okB := processStart(b.Families)
	if !okA || !okB || !ta.Equal(tb) {
		return false
	}
	apart := math.Abs(b.Taken.Sub(a.Taken).Seconds()) + a.Duration.Seconds() + b.Duration.Seconds()
	cores := max(gaugeOf(a, metricGOMAXPROCS), gaugeOf(b, metricGOMAXPROCS), 1)
	return math.Abs(gaugeOf(a, metricCPUSeconds)-gaugeOf(b, metricCPUSeconds)) <= cores*apart+0.01
}

// couldFollow says whether next could be a later scrape of the process that answered last:
// the same start tick, and CPU time that neither went down nor grew faster than its cores.
func couldFollow(last, next ReplicaScrape) bool {
	tl, okL := processStart(last.Families)
	tn, okN := processStart(next.Families)
	grew := gaugeOf(next, metricCPUSeconds) - gaugeOf(last, metricCPUSeconds)
	elapsed := next.Taken.Sub(last.Taken).Seconds() + last.Duration.Seconds() + next.Duration.Seconds()
	return okL == okN && tl.Equal(tn) && grew >= 0 && grew <= max(gaugeOf(next, metricGOMAXPROCS), 1)*elapsed+0.01
}

func gaugeOf(r ReplicaScrape, name string) float64 {
	if m := r.Families[name].GetMetric(); len(m) > 0 {
		return value(m[0])
	}
	return 0
}

// scrapeBalanced reads one round of a balanced address: every kept slot, then new slots until as
// many distinct processes as believed answered (at most 2n+1 new ones for n), or, with the
// number unknown, one new slot a round, which finds the others over a few rounds. A slot that
// failed or reached a process another slot reads is closed. A kept slot that failed is reported
// (the process it read is missing from the round), as is an address where nothing answered.
func (s *Scraper) scrapeBalanced(ctx context.Context, address string, believed int) []ReplicaScrape {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.balanced[address]
	if !ok {
		b = &balancedAddress{address: address}
		s.balanced[address] = b
	}
	want, newAtMost := believed, 2*believed+1
	if believed == 0 {
		want, newAtMost = len(b.slots)+1, 1
	}
	var out []ReplicaScrape
	var failed *ReplicaScrape
	var kept []*slot
	take := func(sl *slot, r ReplicaScrape, report bool) {
		if r.Err != nil {
			if report || failed == nil {
				failed = &r
			}
			sl.close()
			return
		}
		for _, o := range out {
			if sameProcess(o, r) {
				sl.close()
				return
			}
		}
		out, kept = append(out, r), append(kept, sl)
	}
	lost := false
	for _, sl := range b.slots {
		r := s.scrapeSlot(ctx, address, sl)
		lost = lost || r.Err != nil
		take(sl, r, true)
	}
	for opened := 0; len(out) < want && opened < newAtMost && ctx.Err() == nil; opened++ {
		sl, err := b.openSlot(s.pinned)
		if err != nil {
			failed = &ReplicaScrape{Replica: address, Taken: time.Now(), Err: fmt.Errorf("replica behind %s: %w", address, err)}
			break
		}
		take(sl, s.scrapeSlot(ctx, address, sl), false)
	}
	b.slots = kept
	if failed != nil && (lost || len(out) == 0) {
		out = append(out, *failed)
	}
	return out
}
