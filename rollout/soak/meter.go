package soak

import (
	"context"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
)

// Meter scrapes the API servers at a fixed interval for every rollout at once: one scrape of each
// replica per interval, however many rollouts soak. It keeps the readings of the last
// KeepFor, so a soak that starts looking late (a step that ran after its wave began, a
// controller that just took over) still sees its wave from the start.
type Meter struct {
	Scraper controlplane.Source
	// Interval between scrapes; default 5 s. KeepFor is how long readings are kept; default 40
	// minutes, past the longest a soak waits for a slow poller.
	Interval, KeepFor time.Duration

	mu sync.Mutex
	// latest is the last scrape; readings the Readings between consecutive scrapes.
	latest    controlplane.Snapshot
	readings  []controlplane.Reading
	changed   chan struct{}
	startedAt time.Time
}

func (m *Meter) interval() time.Duration {
	if m.Interval > 0 {
		return m.Interval
	}
	return 5 * time.Second
}

// Run scrapes until ctx ends.
func (m *Meter) Run(ctx context.Context) {
	keep := m.KeepFor
	if keep <= 0 {
		keep = 40 * time.Minute
	}
	m.mu.Lock()
	m.startedAt = time.Now()
	m.mu.Unlock()
	prev := m.Scraper.Scrape(ctx)
	m.publish(prev, nil, keep)
	ticker := time.NewTicker(m.interval())
	defer ticker.Stop()
	var waiting time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		cur := m.Scraper.Scrape(ctx)
		if !controlplane.Fresh(prev, cur) {
			if waiting.IsZero() {
				waiting = time.Now()
			}
			if time.Since(waiting) < staleFor {
				// Some process was not read again (behind a balanced address, or by a Prometheus
				// that scrapes less often than the meter): the reading waits for it rather than
				// leave it out, and then rates each process over its own interval.
				m.publish(cur, nil, keep)
				continue
			}
		}
		waiting = time.Time{}
		r := controlplane.Analyze(prev, cur)
		prev = cur
		m.publish(cur, &r, keep)
	}
}

// staleFor is how long a reading waits for every process to be read again: past a
// Prometheus's usual 30- to 60-s scrape interval. A reading after it leaves the process out, and
// the soak skips that interval.
const staleFor = 2 * time.Minute

func (m *Meter) publish(snap controlplane.Snapshot, r *controlplane.Reading, keep time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.latest = snap
	if r != nil {
		m.readings = append(m.readings, *r)
		cut := 0
		for cut < len(m.readings) && r.Window.To.Sub(m.readings[cut].Window.To) > keep {
			cut++
		}
		m.readings = m.readings[cut:]
	}
	if m.changed != nil && r != nil {
		close(m.changed)
		m.changed = nil
	}
}

// Latest is the last scrape.
func (m *Meter) Latest() controlplane.Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.latest
}

// Since returns the readings whose window ended after t, oldest first.
func (m *Meter) Since(t time.Time) []controlplane.Reading {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []controlplane.Reading
	for _, r := range m.readings {
		if r.Window.To.After(t) {
			out = append(out, r)
		}
	}
	return out
}

// Wait blocks until the next reading is published or ctx ends: the first reading of a CLI
// that just started.
func (m *Meter) Wait(ctx context.Context) {
	m.mu.Lock()
	if m.changed == nil {
		m.changed = make(chan struct{})
	}
	ch := m.changed
	m.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// Every is the scrape interval.
func (m *Meter) Every() time.Duration { return m.interval() }

// Covers reports whether the meter has measured since t: a soak that began before the meter's
// first reading lost its samples with the process that took them.
func (m *Meter) Covers(t time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.startedAt.IsZero() || !t.Before(m.startedAt)
}
