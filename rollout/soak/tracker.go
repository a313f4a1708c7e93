package soak

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Tracker is one rollout's soak in progress: the scrape intervals since the soak began and the
// scrape its soak-long window (SLIs, other flows) starts from. It lives in memory only: a
// process that takes over a rollout starts the soak again (state.RestartSoak) and loses
// nothing but time.
type Tracker struct {
	key       string
	start     time.Time
	first     controlplane.Snapshot
	seen      time.Time
	prev      *controlplane.Reading
	intervals []check.Interval
	readyAt   time.Duration
	// skipped counts the intervals left out because a replica could not be read, by replica.
	skipped map[string]int
}

// SoakKey names one soak of one rollout: its id, its wave and when the soak began.
func SoakKey(st state.State) string {
	return fmt.Sprintf("%s/%d/%d", st.ID, st.Wave, st.SoakStarted.UnixNano())
}

// NewTracker starts following the current soak of st with the meter's readings since it
// began.
func NewTracker(st state.State, m *Meter) *Tracker {
	return &Tracker{key: SoakKey(st), start: st.SoakStarted, first: m.Latest(), seen: st.SoakStarted, readyAt: -1}
}

// Key is the soak the tracker follows.
func (t *Tracker) Key() string { return t.key }

// Observe takes the meter's readings since the last call. An interval in which a replica could
// not be read is skipped, and said: its load would count the missing replica as idle, and a
// decision on the replicas that answered could miss the one the agents load most. The soak
// holds on what it has until every replica answers again; a replica that is gone (no longer in
// the kubernetes EndpointSlice) is not missing.
func (t *Tracker) Observe(m *Meter, lane state.Lane) {
	for _, r := range m.Since(t.seen) {
		t.seen = r.Window.To
		if !r.Reachable() {
			for _, rep := range r.Replicas {
				if rep.State == controlplane.ReplicaUnreachable || rep.State == controlplane.ReplicaStale {
					if t.skipped == nil {
						t.skipped = map[string]int{}
					}
					t.skipped[rep.Replica]++
				}
			}
			continue
		}
		if r.Window.Seconds <= 0 {
			continue
		}
		t.intervals = append(t.intervals, IntervalOf(t.prev, r, lane, t.start))
		t.prev = &r
	}
}

// Intervals are the soak's intervals so far.
func (t *Tracker) Intervals() []check.Interval { return t.intervals }

// Observations are what analyze judges at now: the intervals, the agents (their ReadyAt is
// remembered from the first call that saw them all Ready), the SLIs and the other flows over the
// soak so far against before, the reading taken before the rollout.
func (t *Tracker) Observations(st state.State, agents check.Agents, latest controlplane.Snapshot, before controlplane.Reading, now time.Time, own ...string) analyze.Observations {
	elapsed := now.Sub(t.start)
	if agents.Ready == agents.Desired && t.readyAt < 0 {
		t.readyAt = elapsed
	}
	agents.ReadyAt = max(t.readyAt, 0)
	window := controlplane.Analyze(t.first, latest)
	soak := st.Soak.Duration
	if st.Phase == state.Baseline {
		soak = st.BaselineDuration()
	}
	w := check.Wave{Number: st.Wave, Fleet: st.Eligible, Soak: soak, Elapsed: elapsed, Agents: agents,
		Intervals: t.intervals, History: st.Records(), Limits: st.Limits}
	if st.Reference != nil {
		w.Reference = *st.Reference
	}
	o := analyze.Observations{Wave: w, SLIs: SLIs(window), Others: OtherFlows(window, before, st.Lane, own...)}
	if basis := window.Coverage.Basis(); basis != "" {
		o.Notes = append(o.Notes, basis)
	}
	for _, replica := range slices.Sorted(maps.Keys(t.skipped)) {
		o.Notes = append(o.Notes, fmt.Sprintf("API server %s could not be read afresh in %d scrape intervals: they are left out, not counted as idle", replica, t.skipped[replica]))
	}
	return o
}

// ReadyAt is when every agent of the soak was first seen Ready, or the zero time.
func (t *Tracker) ReadyAt() time.Time {
	if t.readyAt < 0 {
		return time.Time{}
	}
	return t.start.Add(t.readyAt)
}
