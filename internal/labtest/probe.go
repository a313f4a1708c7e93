package labtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// APIProbe GETs one ConfigMap as an ordinary service account (not exempt from APF, unlike the
// lab's admin), at a fixed rate, each request on its own goroutine so that a slow answer never
// delays the next (no coordinated omission): what an ordinary client of the API suffers.
type APIProbe struct {
	client *http.Client
	url    string

	mu        sync.Mutex
	latencies []float64
	failed    int
	inflight  map[int]time.Time
	next      int
}

// NewAPIProbe probes configMap in namespace as serviceAccount, impersonated by admin.
func NewAPIProbe(admin *rest.Config, namespace, serviceAccount, configMap string) (*APIProbe, error) {
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
	return &APIProbe{client: client, url: cfg.Host + "/api/v1/namespaces/" + namespace + "/configmaps/" + configMap, inflight: map[int]time.Time{}}, nil
}

// Run probes perSecond times a second until ctx ends.
func (p *APIProbe) Run(ctx context.Context, perSecond int) {
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

func (p *APIProbe) once(ctx context.Context) {
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

// Take returns and clears what the probe saw since the last take, and counts the requests
// still unanswered after stuckAfter.
func (p *APIProbe) Take(stuckAfter time.Duration) (latencies []float64, failed, stuck int) {
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
