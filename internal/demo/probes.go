package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	miekgdns "github.com/miekg/dns"
	"k8s.io/client-go/rest"
)

// apiProbe GETs one ConfigMap as an ordinary service account, at a fixed rate, each request on
// its own goroutine so that a slow answer never delays the next (no coordinated omission).
type apiProbe struct {
	client *http.Client
	url    string

	mu        sync.Mutex
	latencies []float64
	failed    int
	inflight  map[int]time.Time
	next      int
}

func newAPIProbe(admin *rest.Config, namespace, serviceAccount, configMap string) (*apiProbe, error) {
	cfg := rest.CopyConfig(admin)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + namespace + ":" + serviceAccount,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("API probe client: %w", err)
	}
	client.Timeout = 30 * time.Second
	return &apiProbe{client: client, url: cfg.Host + "/api/v1/namespaces/" + namespace + "/configmaps/" + configMap, inflight: map[int]time.Time{}}, nil
}

func (p *apiProbe) run(ctx context.Context, perSecond int) {
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			go p.once(ctx)
		}
	}
}

func (p *apiProbe) once(ctx context.Context) {
	start := time.Now()
	p.mu.Lock()
	id := p.next
	p.next++
	p.inflight[id] = start
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.inflight, id)
		p.mu.Unlock()
	}()
	ok := false
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err == nil {
		if resp, err := p.client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK
		}
	}
	if ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latencies = append(p.latencies, time.Since(start).Seconds())
	if !ok {
		p.failed++
	}
}

// take returns and clears what the probe saw since the last take, and counts the requests
// still unanswered after stuckAfter.
func (p *apiProbe) take(stuckAfter time.Duration) (latencies []float64, failed, stuck int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	latencies, failed = p.latencies, p.failed
	p.latencies, p.failed = nil, 0
	for _, start := range p.inflight {
		if time.Since(start) > stuckAfter {
			stuck++
		}
	}
	return latencies, failed, stuck
}

// dnsProbe resolves Service names round-robin against one DNS server over UDP, as a stub
// resolver with `options timeout:1 attempts:2` does: a query that gets no answer, or an error,
// is asked once more, and a truncated answer is asked again over TCP (headless Services with many
// endpoints do not fit in 512 bytes). An answer counts when it is NOERROR with at least one record.
type dnsProbe struct {
	addr  string
	names []string

	mu    sync.Mutex
	count DNSCount
}

func (p *dnsProbe) run(ctx context.Context, perSecond int) {
	client := &miekgdns.Client{Net: "udp", Timeout: time.Second}
	overTCP := &miekgdns.Client{Net: "tcp", Timeout: time.Second}
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	defer tick.Stop()
	// Each lookup runs on its own, as lookups of many clients do: a failing one takes seconds
	// (timeout, retry) and must not slow the rate, or failures would be undercounted.
	inFlight := make(chan struct{}, 4*perSecond)
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case inFlight <- struct{}{}:
		default: // four seconds' worth of lookups are all still waiting: this one fails too
			p.record(false)
			continue
		}
		name := p.names[i%len(p.names)]
		go func() {
			defer func() { <-inFlight }()
			ok := false
			for attempt := 0; attempt < 2 && !ok; attempt++ {
				if attempt > 0 && !sleep(ctx, time.Second) {
					return
				}
				q := new(miekgdns.Msg)
				q.SetQuestion(name, miekgdns.TypeA)
				resp, _, err := client.ExchangeContext(ctx, q, p.addr)
				if err == nil && resp.Truncated {
					resp, _, err = overTCP.ExchangeContext(ctx, q, p.addr)
				}
				if ctx.Err() != nil {
					return
				}
				ok = err == nil && resp.Rcode == miekgdns.RcodeSuccess && len(resp.Answer) > 0
			}
			p.record(ok)
		}()
	}
}

func (p *dnsProbe) record(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ok {
		p.count.OK++
	} else {
		p.count.Failed++
	}
}

func (p *dnsProbe) take() DNSCount {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.count
	p.count = DNSCount{}
	return c
}
