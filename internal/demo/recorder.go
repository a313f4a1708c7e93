package demo

import (
	"context"
	"fmt"
	"math"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
)

// recorder samples a run at a fixed interval until its context ends.
type recorder struct {
	interval time.Duration
	start    time.Time
	api      *labtest.APIProbe
	dns      map[string]*dnsProbe
	scraper  *controlplane.Scraper
	client   kubernetes.Interface
	agent    struct{ namespace, name string }
	lab      *labtest.Lab
	events   *eventLog

	agentNodes int
	restarts   int

	samples chan Sample
}

func (r *recorder) run(ctx context.Context) []Sample {
	var out []Sample
	prev := r.scraper.Scrape(ctx)
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
		cur := r.scraper.Scrape(ctx)
		sample := r.sample(ctx, controlplane.Analyze(prev, cur))
		prev = cur
		out = append(out, sample)
		select {
		case r.samples <- sample:
		default: // the live view is best effort
		}
	}
}

func (r *recorder) sample(ctx context.Context, reading controlplane.Reading) Sample {
	latencies, failed, stuck := r.api.Take(time.Second)
	s := Sample{
		At:           time.Since(r.start).Seconds(),
		ProbeP50:     quantile(latencies, 0.50),
		ProbeP99:     quantile(latencies, 0.99),
		ProbeOK:      len(latencies) - failed,
		ProbeFailed:  failed,
		ProbeStuck:   stuck,
		ServerGetP99: Number(math.NaN()),
		Seats:        map[string]float64{},
		DNS:          map[string]DNSCount{},
	}
	if reading.Reachable() {
		for _, sli := range reading.SLIs {
			if sli.Verb == "GET" && sli.Scope == "resource" && sli.Latency.Count > 0 {
				s.ServerGetP99 = Number(sli.Latency.P99Seconds)
			}
		}
		for _, f := range reading.Flows {
			s.Rejected += f.RejectedPerSecond
			if f.SeatSecondsPerSecond > 0 {
				s.Seats[f.FlowSchema] += f.SeatSecondsPerSecond
			}
		}
	}
	for name, p := range r.dns {
		s.DNS[name] = p.take()
	}
	getCtx, cancel := context.WithTimeout(ctx, r.interval)
	defer cancel()
	ds, err := r.client.AppsV1().DaemonSets(r.agent.namespace).Get(getCtx, r.agent.name, metav1.GetOptions{})
	switch {
	case err == nil:
		r.agentNodes = int(ds.Status.CurrentNumberScheduled)
	case apierrors.IsNotFound(err):
		r.agentNodes = 0
	}
	// On any other error the apiserver did not answer in time: keep the last count.
	s.AgentNodes = r.agentNodes
	if st, err := r.lab.Status(ctx); err == nil {
		if n := st.ComponentRestarts["kube-apiserver"]; n > r.restarts {
			r.restarts = n
			r.events.add(fmt.Sprintf("kube-apiserver died (killed at its memory limit) and was restarted: %d so far", n))
		}
	}
	s.APIServerRestarts = r.restarts
	return s
}
