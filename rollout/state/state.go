package state

import (
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/bulkhead-dev/bulkhead/rollout/check"
)

// Phase is where a rollout stands.
type Phase string

const (
	// Baseline: before any pod changes, the API servers are measured as they are — for an
	// update with the current version in its lane, to learn what the old version costs.
	Baseline Phase = "Baseline"
	// Rolling: wave Wave's nodes are being switched to the new pods.
	Rolling Phase = "Rolling"
	// Soaking: wave Wave is switched; bulkhead watches it until the analysis decides.
	Soaking Phase = "Soaking"
	// Finishing: every wave passed; the user's update strategy (and, for a new DaemonSet,
	// its exact template) is being restored and the lane removed.
	Finishing Phase = "Finishing"
	// Complete: done; terminal.
	Complete Phase = "Complete"
	// RollingBack: halted or aborted; the lane is squeezed and the old pods restored.
	RollingBack Phase = "RollingBack"
	// RolledBack: the rollback finished; terminal.
	RolledBack Phase = "RolledBack"
)

// Kind says whether the rollout creates a DaemonSet or updates one.
type Kind string

const (
	Create Kind = "create"
	Update Kind = "update"
)

// Mode says whether a rollout holds its waves (guard) or only measures one the DaemonSet
// controller runs by itself (observe).
type Mode string

const (
	// Guard rolls out in waves, halting and rolling back over budget. The zero Mode is Guard.
	Guard Mode = "guard"
	// Observe holds nothing: it waits for the DaemonSet controller to finish, measures the
	// fleet, and records the decision guard would have taken, never acting on it.
	Observe Mode = "observe"
)

// version is the schema version of the persisted state. Versions 1 (seats only) and 2 (before
// the controller: no mode, revision or hold) are still read (legacy.go).
const version = 3

// State is everything a rollout must remember across processes: enough for `status` on any
// machine and for `resume` after the CLI died at any instant.
type State struct {
	Version int    `json:"v"`
	ID      string `json:"id"`
	Kind    Kind   `json:"kind"`
	Phase   Phase  `json:"phase"`
	// Paused stops the rollout between actions; RollingBack cannot be paused.
	Paused bool `json:"paused,omitempty"`
	// Mode is guard ("" in states written before observe existed) or observe.
	Mode Mode `json:"mode,omitempty"`
	// Held says the rollout adopted a DaemonSet that admission holds (the controller's): it
	// ends by releasing the hold (the latest requested update strategy, the hold's annotations
	// removed), and a new DaemonSet that rolls back is kept, held, instead of deleted.
	Held bool `json:"held,omitempty"`
	// Revision names the pod template the rollout rolls out (its user template, hashed: the
	// same template held, gated or not has the same revision). A DaemonSet whose template has
	// another revision got a new one during the rollout.
	Revision string `json:"revision,omitempty"`

	// WavesSpec is --waves as given; Targets are its cumulative node counts resolved against
	// Eligible nodes when the rollout started.
	WavesSpec string `json:"waves"`
	Targets   []int  `json:"targets"`
	Eligible  int    `json:"eligible"`
	// Wave is the current wave, 1-based (0 during the baseline).
	Wave int `json:"wave"`
	// Done is how many nodes run the new pods (as of the last completed action).
	Done int `json:"done"`
	// WaveStarted is when the current wave began; SoakStarted is when its soak began: the
	// same moment, unless a resume restarted the soak (a dead CLI's samples are lost).
	WaveStarted time.Time `json:"waveStarted,omitzero"`
	SoakStarted time.Time `json:"soakStarted,omitzero"`

	Soak Duration `json:"soak"`
	// BaselineSoak is how long the baseline lasts when it differs from Soak: a new DaemonSet's
	// baseline only measures the servers before wave 1.
	BaselineSoak Duration `json:"baselineSoak,omitzero"`
	// Budget is the share of the API servers' capacity, per resource, the DaemonSet may use at
	// 100%; Limits what that came to, with the capacity and use they rest on (recomputed with
	// the baseline's measurement of what the servers already use).
	Budget check.Budget                   `json:"budget"`
	Limits map[check.Resource]check.Limit `json:"limits"`
	// Reference is the servers' CPU, and the lane's, measured by the baseline: what each
	// wave's CPU difference is measured against. Nil until the baseline decided.
	Reference *check.Reference `json:"reference,omitempty"`

	// Lane names the rollout's FlowSchema and PriorityLevelConfiguration.
	Lane Lane `json:"lane"`
	// NodeLabel is the node label that gates a new DaemonSet's pods (Create only).
	NodeLabel string `json:"nodeLabel,omitempty"`
	// OriginalStrategy is the user's update strategy, restored at the end.
	OriginalStrategy appsv1.DaemonSetUpdateStrategy `json:"originalStrategy"`
	// OriginalHash is the controller-revision-hash of the pods before an update: the
	// revision a rollback restores.
	OriginalHash string `json:"originalHash,omitempty"`

	// Before holds the other flows' rejections and waits from before the rollout began, the
	// yardstick of collateral damage, so a resumed rollout judges against the same one.
	Before []FlowBaseline `json:"before,omitempty"`
	// History keeps each finished wave's steady measurement for the per-version regression.
	History []WaveRecord `json:"history,omitempty"`
	// Halted is the measurement of the soak that decided to halt, kept for the report; it is
	// not a regression point (History is), since the rollback undoes it.
	Halted *WaveRecord `json:"halted,omitempty"`
	// WouldHalt is, in observe mode, the soak whose decision guard would have halted on, with
	// its prediction; Reason then says why.
	WouldHalt *WaveRecord `json:"wouldHalt,omitempty"`
	// Reason says why a rollout is rolling back (halt reasons or "aborted by user"), or in
	// observe mode why guard would have halted it.
	Reason string `json:"reason,omitempty"`
	// Updated is when this state was last written.
	Updated time.Time `json:"updated"`
}

// Lane is the names of the rollout's APF objects.
type Lane struct {
	FlowSchema    string `json:"flowSchema"`
	PriorityLevel string `json:"priorityLevel"`
	// Shared says the FlowSchema routes the agents to a level bulkhead does not own, the one
	// they would reach anyway (observe mode: measured, never limited); only the FlowSchema is
	// the rollout's.
	Shared bool `json:"shared,omitempty"`
}

// FlowBaseline is one flow's health before the rollout.
type FlowBaseline struct {
	FlowSchema     string   `json:"fs"`
	PriorityLevel  string   `json:"pl"`
	RejectedPerSec float64  `json:"rejected,omitempty"`
	WaitP99        Duration `json:"waitP99"`
}

// WaveRecord is one soaked wave's measurement (wave 0 is the baseline).
type WaveRecord struct {
	Wave int `json:"wave"`
	Old  int `json:"old"`
	New  int `json:"new"`
	// Resources holds, per resource, the lane's steady demand, its start-up burst per agent and
	// what the decision predicted for the whole fleet (the regression points of later waves).
	Resources map[check.Resource]check.Measured `json:"resources,omitempty"`
	// Utilization is the servers' CPU utilisation in the steady window (0: unknown).
	Utilization float64 `json:"utilization,omitempty"`
	// MaxNextWave is how many agents the next wave may start at once with their start-up
	// burst inside every budget (analyze.Decision.MaxNextWave); 0 when unknown.
	MaxNextWave int `json:"maxNextWave,omitempty"`
	// Headline is the decision in words (analyze.Decision.Headline).
	Headline string `json:"headline,omitempty"`
	// ReadyAt is when every agent of the wave was Ready (zero if they never were); At is when
	// the soak decided.
	ReadyAt time.Time `json:"readyAt,omitzero"`
	At      time.Time `json:"at,omitzero"`
}

// Terminal reports whether nothing is left to do.
func (s State) Terminal() bool { return s.Phase == Complete || s.Phase == RolledBack }

// Target is the cumulative node count the current wave reaches (0 during the baseline).
func (s State) Target() int {
	if s.Wave < 1 || s.Wave > len(s.Targets) {
		return 0
	}
	return s.Targets[s.Wave-1]
}

func (s State) validate() error {
	if s.Version != version {
		return fmt.Errorf("state version %d is not supported (want %d); was it written by another bulkhead?", s.Version, version)
	}
	switch s.Kind {
	case Create, Update:
	default:
		return fmt.Errorf("kind %q is not create or update", s.Kind)
	}
	switch s.Mode {
	case "", Guard, Observe:
	default:
		return fmt.Errorf("mode %q is not guard or observe", s.Mode)
	}
	switch s.Phase {
	case Baseline, Rolling, Soaking, Finishing, Complete, RollingBack, RolledBack:
	default:
		return fmt.Errorf("phase %q is unknown", s.Phase)
	}
	if s.ID == "" {
		return fmt.Errorf("rollout id is empty")
	}
	if len(s.Targets) == 0 {
		return fmt.Errorf("no wave targets")
	}
	for i, t := range s.Targets {
		if t < 1 || (i > 0 && t <= s.Targets[i-1]) || t > s.Eligible {
			return fmt.Errorf("wave targets %v must strictly increase within 1..%d eligible nodes", s.Targets, s.Eligible)
		}
	}
	if s.Wave < 0 || s.Wave > len(s.Targets) {
		return fmt.Errorf("wave %d is outside 0..%d", s.Wave, len(s.Targets))
	}
	if s.Phase == Baseline && s.Wave != 0 {
		return fmt.Errorf("a baseline comes before wave 1 (wave %d)", s.Wave)
	}
	if (s.Phase == Rolling || s.Phase == Soaking) && s.Wave < 1 {
		return fmt.Errorf("phase %s needs a wave ≥ 1, have %d", s.Phase, s.Wave)
	}
	for r, share := range s.Budget {
		if share <= 0 || share > 100 {
			return fmt.Errorf("budget %s %g%% must be within (0, 100%%]", r, share)
		}
	}
	if s.Lane.FlowSchema == "" || s.Lane.PriorityLevel == "" {
		return fmt.Errorf("lane names are missing")
	}
	if s.Observing() {
		if s.Phase == Baseline || s.Phase == RollingBack || s.Phase == RolledBack {
			return fmt.Errorf("an observed rollout has no phase %s: it neither measures a baseline nor rolls back", s.Phase)
		}
		return nil
	}
	if s.Kind == Create && s.NodeLabel == "" {
		return fmt.Errorf("a new DaemonSet's rollout needs its node label")
	}
	if s.Kind == Update && s.OriginalHash == "" {
		return fmt.Errorf("an update needs the original revision hash to roll back to")
	}
	return nil
}

// Observing reports whether the rollout only observes the DaemonSet controller's.
func (s State) Observing() bool { return s.Mode == Observe }

// Duration is a time.Duration that reads as "60s" in the annotation, for humans using kubectl.
type Duration struct{ time.Duration }

func (d Duration) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(d.String())), nil }

func (d *Duration) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("duration %s: want a quoted string like \"60s\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	d.Duration = v
	return nil
}
