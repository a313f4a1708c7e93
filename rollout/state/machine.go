package state

import (
	"fmt"
	"maps"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
)

// Action is what the executor must do next for a state. Every action is idempotent: doing it
// twice, or half of it and then all of it, ends in the same cluster. That is what lets a
// killed CLI resume by re-reading the state and doing NextAction again.
type Action string

const (
	// RollWave switches nodes until the current wave's target is reached: label the next
	// nodes (new DaemonSet) or delete their old-revision pods (update). Nodes already switched
	// are skipped.
	RollWave Action = "roll-wave"
	// Soak measures the current wave (or the baseline) and asks analyze for a decision.
	Soak Action = "soak"
	// Finish restores the user's update strategy (and, for a new DaemonSet, its exact
	// template), removes the node labels and the lane.
	Finish Action = "finish"
	// Rollback squeezes the lane, restores the old pods (or deletes a new DaemonSet), then
	// restores the strategy and removes the lane.
	Rollback Action = "rollback"
	// Wait: paused until resume.
	Wait Action = "wait"
	// None: the rollout is over.
	None Action = "none"
)

// NextAction is the action the state calls for.
func (s State) NextAction() Action {
	switch {
	case s.Terminal():
		return None
	case s.Phase == RollingBack:
		return Rollback // a rollback is never paused
	case s.Paused:
		return Wait
	}
	switch s.Phase {
	case Rolling:
		return RollWave
	case Baseline, Soaking:
		return Soak
	default: // Finishing
		return Finish
	}
}

// Start is what a new rollout knows when it begins.
type Start struct {
	ID               string
	Kind             Kind
	WavesSpec        string
	Targets          []int
	Eligible         int
	Soak             time.Duration
	BaselineSoak     time.Duration
	Budget           check.Budget
	Limits           map[check.Resource]check.Limit
	Lane             Lane
	NodeLabel        string
	OriginalStrategy appsv1.DaemonSetUpdateStrategy
	OriginalHash     string
	Before           []FlowBaseline
	Mode             Mode
	Held             bool
	Revision         string
}

// New is a rollout's first state: a baseline soak, which measures the servers (and, for an
// update, the current version in its lane) before any pod changes. An observed rollout has one
// wave, the whole fleet, which the DaemonSet controller rolls by itself: it begins there.
func New(st Start, now time.Time) (State, error) {
	s := State{
		Version: version, ID: st.ID, Kind: st.Kind, Phase: Baseline, SoakStarted: now,
		Mode: st.Mode, Held: st.Held, Revision: st.Revision,
		WavesSpec: st.WavesSpec, Targets: append([]int(nil), st.Targets...), Eligible: st.Eligible,
		Soak: Duration{st.Soak}, BaselineSoak: Duration{st.BaselineSoak}, Budget: maps.Clone(st.Budget), Limits: maps.Clone(st.Limits),
		Lane: st.Lane, NodeLabel: st.NodeLabel, OriginalStrategy: st.OriginalStrategy, OriginalHash: st.OriginalHash,
		Before: append([]FlowBaseline(nil), st.Before...), Updated: now,
	}
	if st.Soak <= 0 {
		return State{}, fmt.Errorf("soak %v must be positive", st.Soak)
	}
	if st.BaselineSoak < 0 {
		return State{}, fmt.Errorf("baseline soak %v must not be negative", st.BaselineSoak)
	}
	if len(st.Budget) == 0 {
		return State{}, fmt.Errorf("no budget")
	}
	if s.Observing() {
		if st.Held {
			return State{}, fmt.Errorf("an observed rollout holds nothing, so it cannot adopt a held DaemonSet")
		}
		s.Targets = []int{st.Eligible}
		s.Phase, s.Wave, s.WaveStarted = Rolling, 1, now
	}
	if err := s.validate(); err != nil {
		return State{}, err
	}
	return s, nil
}

// WaveRolled records that the current wave's nodes are switched (done of them in all):
// Rolling → Soaking. The soak counts from the wave's start, so the start-up burst of the
// wave's agents falls inside it.
func (s State) WaveRolled(done int, now time.Time) (State, error) {
	if s.Phase != Rolling {
		return s, fmt.Errorf("wave %d cannot finish rolling in phase %s", s.Wave, s.Phase)
	}
	if done < s.Target() {
		return s, fmt.Errorf("wave %d has %d of its %d nodes switched", s.Wave, done, s.Target())
	}
	s.Phase, s.Done, s.Updated = Soaking, done, now
	return s, nil
}

// Observed records, for an observed rollout, that the DaemonSet controller has rolled the
// whole fleet and every agent settled: Rolling → Soaking, the soak counting from now.
func (s State) Observed(done int, now time.Time) (State, error) {
	if !s.Observing() || s.Phase != Rolling {
		return s, fmt.Errorf("only an observed rollout that waits for the DaemonSet controller can be observed rolled (mode %q, phase %s)", s.Mode, s.Phase)
	}
	s.Phase, s.Done, s.WaveStarted, s.SoakStarted, s.Updated = Soaking, done, now, now, now
	return s, nil
}

// Decided applies an analysis verdict to a soaking wave or the baseline. Proceed records the
// wave's measurement and moves on (to the next wave, or to finishing after the last); Hold
// changes nothing; Halt starts the rollback with the reasons, keeping the halting wave's
// record for the report. An observed rollout never rolls back: a halt is recorded as what guard
// would have done (WouldHalt, Reason), and the rollout finishes as a proceed would.
func (s State) Decided(v analyze.Verdict, rec WaveRecord, reason string, now time.Time) (State, error) {
	if s.Phase != Soaking && s.Phase != Baseline {
		return s, fmt.Errorf("a %s verdict needs a soaking wave, but the rollout is in phase %s", v, s.Phase)
	}
	switch v {
	case analyze.Hold:
		return s, nil
	case analyze.Halt:
		if s.Observing() {
			rec.Wave = s.Wave
			s.History = append(append([]WaveRecord(nil), s.History...), rec)
			s.Phase, s.WouldHalt, s.Reason, s.Updated = Finishing, &rec, reason, now
			return s, nil
		}
		rec.Wave = s.Wave
		s.Phase, s.Reason, s.Halted, s.Updated = RollingBack, reason, &rec, now
		return s, nil
	case analyze.Proceed:
	default:
		return s, fmt.Errorf("unknown verdict %q", v)
	}
	rec.Wave = s.Wave
	s.History = append(append([]WaveRecord(nil), s.History...), rec)
	if s.Phase == Baseline {
		s.Phase, s.Wave, s.WaveStarted, s.SoakStarted = Rolling, 1, now, now
	} else if s.Wave == len(s.Targets) {
		s.Phase = Finishing
	} else {
		s.Phase, s.Wave, s.WaveStarted, s.SoakStarted = Rolling, s.Wave+1, now, now
	}
	s.Updated = now
	return s, nil
}

// Finished: Finishing → Complete.
func (s State) Finished(now time.Time) (State, error) {
	if s.Phase != Finishing {
		return s, fmt.Errorf("cannot complete a rollout in phase %s", s.Phase)
	}
	s.Phase, s.Updated = Complete, now
	return s, nil
}

// RolledBackAt: RollingBack → RolledBack.
func (s State) RolledBackAt(now time.Time) (State, error) {
	if s.Phase != RollingBack {
		return s, fmt.Errorf("cannot mark a rollout in phase %s rolled back", s.Phase)
	}
	s.Phase, s.Updated = RolledBack, now
	return s, nil
}

// Pause stops the rollout after the current action. Pausing twice is fine; pausing a
// rollback is not (a half rollback is worse than either end).
func (s State) Pause(now time.Time) (State, error) {
	switch {
	case s.Terminal():
		return s, fmt.Errorf("the rollout is already %s", s.Phase)
	case s.Phase == RollingBack:
		return s, fmt.Errorf("the rollout is rolling back (%s); a rollback cannot be paused", s.Reason)
	}
	s.Paused, s.Updated = true, now
	return s, nil
}

// Resume continues a paused or orphaned rollout (its CLI died). A soak restarts from now:
// the dead process's samples are gone, and the wave's agents are running already.
// FreshSoak tells the two apart.
func (s State) Resume(now time.Time) (State, error) {
	if s.Terminal() {
		return s, fmt.Errorf("the rollout is already %s; nothing to resume", s.Phase)
	}
	s.Paused = false
	if s.Phase == Soaking || s.Phase == Baseline {
		s.SoakStarted = now
	}
	s.Updated = now
	return s, nil
}

// Abort starts a rollback on the user's request, or because a new pod template superseded
// the one rolled out. Aborting a rollback in progress is a no-op. An observed rollout, which
// has nothing to roll back, stops measuring and finishes.
func (s State) Abort(reason string, now time.Time) (State, error) {
	switch {
	case s.Terminal():
		return s, fmt.Errorf("the rollout is already %s; nothing to abort", s.Phase)
	case s.Phase == RollingBack:
		return s, nil
	case s.Observing():
		s.Phase, s.Paused, s.Reason, s.Updated = Finishing, false, reason, now
		return s, nil
	}
	s.Phase, s.Paused, s.Reason, s.Updated = RollingBack, false, reason, now
	return s, nil
}

// Records are the recorded waves as the checks read them.
func (s State) Records() []check.Record {
	out := make([]check.Record, 0, len(s.History))
	for _, r := range s.History {
		out = append(out, check.Record{Old: r.Old, New: r.New, Resources: r.Resources, Utilization: r.Utilization})
	}
	return out
}

// BaselineDuration is how long the baseline soaks.
func (s State) BaselineDuration() time.Duration {
	if s.BaselineSoak.Duration > 0 {
		return s.BaselineSoak.Duration
	}
	return s.Soak.Duration
}

// FreshSoak reports whether the current soak began with its wave (so it sees the wave's
// start-up burst) rather than at a resume (when the agents were running already).
func (s State) FreshSoak() bool { return s.SoakStarted.Equal(s.WaveStarted) }

// Batch is how many nodes the current wave may switch at once: the last soaked wave's
// MaxNextWave, at least one; 0 means no limit is known.
func (s State) Batch() int {
	if len(s.History) == 0 {
		return 0
	}
	if last := s.History[len(s.History)-1].MaxNextWave; last > 0 {
		return last
	}
	return 0
}

// Baselined records what the baseline learned of the servers: the CPU reference each wave's
// difference is measured against, and the limits recomputed with what the servers already use.
// The baseline's own decision follows with Decided.
func (s State) Baselined(ref check.Reference, limits map[check.Resource]check.Limit, now time.Time) (State, error) {
	if s.Phase != Baseline {
		return s, fmt.Errorf("a reference is measured by the baseline, but the rollout is in phase %s", s.Phase)
	}
	s.Reference, s.Limits, s.Updated = &ref, maps.Clone(limits), now
	return s, nil
}

// RestartSoak starts the current soak again from now: the process that was soaking is gone
// with its samples (a controller's leader changed, a CLI was killed) and nobody resumed it.
// The wave's agents are running already, so the restarted soak is not fresh.
func (s State) RestartSoak(now time.Time) (State, error) {
	if s.Phase != Soaking && s.Phase != Baseline {
		return s, fmt.Errorf("no soak to restart in phase %s", s.Phase)
	}
	s.SoakStarted, s.Updated = now, now
	return s, nil
}
