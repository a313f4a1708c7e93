package breakglass

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/client-go/rest"

	"github.com/bulkhead-dev/bulkhead/controlplane"
)

// Traffic is what the API servers did with a jail's requests, summed over the replicas that
// answered, since each replica started: rejected is the jail working, admitted is what still gets
// through (APF lets one request of a zero-seat level run when none is running).
type Traffic struct {
	Rejected float64
	Admitted float64
}

// JailTraffic reads the APF counters of the named flow schemas from a snapshot. Replicas that
// could not be scraped count nothing.
func JailTraffic(s controlplane.Snapshot, names []string) map[string]Traffic {
	want := make(map[string]bool, len(names))
	out := make(map[string]Traffic, len(names))
	for _, n := range names {
		want[n] = true
		out[n] = Traffic{}
	}
	for _, r := range s.Replicas {
		if r.Err != nil {
			continue
		}
		for family, add := range map[string]func(*Traffic, float64){
			"apiserver_flowcontrol_rejected_requests_total":   func(t *Traffic, v float64) { t.Rejected += v },
			"apiserver_flowcontrol_dispatched_requests_total": func(t *Traffic, v float64) { t.Admitted += v },
		} {
			for _, m := range r.Families[family].GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "flow_schema" && want[l.GetValue()] {
						t := out[l.GetValue()]
						add(&t, m.GetCounter().GetValue())
						out[l.GetValue()] = t
					}
				}
			}
		}
	}
	return out
}

// ReadJailTraffic scrapes every kube-apiserver replica once (found through the default/kubernetes
// EndpointSlice) and returns JailTraffic; err names the replicas that could not be read.
func ReadJailTraffic(ctx context.Context, cfg *rest.Config, names []string) (map[string]Traffic, error) {
	scraper, err := controlplane.NewScraper(cfg, controlplane.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	scraper.WaitForDiscovery(ctx, 3*time.Second)
	snap := scraper.Scrape(ctx)
	var errs []error
	for _, r := range snap.Replicas {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("replica %s: %w", r.Replica, r.Err))
		}
	}
	if len(errs) == len(snap.Replicas) {
		// Nothing read: no numbers rather than zeros that would look like an idle jail.
		return nil, fmt.Errorf("no kube-apiserver /metrics could be read: %w", errors.Join(errs...))
	}
	return JailTraffic(snap, names), errors.Join(errs...)
}

// LaneSeats reads, from the first replica that reports it, the break-glass level's nominal seats
// and the sum over all levels (the server's seat capacity, up to rounding).
func LaneSeats(s controlplane.Snapshot) (lane, total float64, ok bool) {
	for _, r := range s.Replicas {
		if r.Err != nil {
			continue
		}
		lane, total, ok = 0, 0, false
		for _, m := range r.Families["apiserver_flowcontrol_nominal_limit_seats"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "priority_level" {
					continue
				}
				total += m.GetGauge().GetValue()
				if l.GetValue() == LaneName {
					lane, ok = m.GetGauge().GetValue(), true
				}
			}
		}
		if ok {
			return lane, total, true
		}
	}
	return 0, 0, false
}

// ReadLaneSeats waits up to wait for the API server to size the lane (it reconfigures APF a
// moment after the level is created) and returns LaneSeats.
func ReadLaneSeats(ctx context.Context, cfg *rest.Config, wait time.Duration) (lane, total float64, err error) {
	scraper, err := controlplane.NewScraper(cfg, controlplane.Options{Timeout: 5 * time.Second, NoDiscovery: true})
	if err != nil {
		return 0, 0, err
	}
	deadline := time.Now().Add(wait)
	for {
		snap := scraper.Scrape(ctx)
		if lane, total, ok := LaneSeats(snap); ok {
			return lane, total, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			for _, r := range snap.Replicas {
				if r.Err != nil {
					return 0, 0, fmt.Errorf("read /metrics of %s: %w", r.Replica, r.Err)
				}
			}
			return 0, 0, fmt.Errorf("the API server does not report level %s yet", LaneName)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
