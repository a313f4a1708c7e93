package demo

import (
	"context"
	"sync"
	"time"

	miekgdns "github.com/miekg/dns"
)

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
