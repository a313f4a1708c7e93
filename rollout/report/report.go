package report

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Report is one rollout, as the JSON report spells it.
type Report struct {
	Namespace string `json:"namespace"`
	DaemonSet string `json:"daemonSet"`
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Phase     string `json:"phase"`
	Paused    bool   `json:"paused,omitempty"`
	// Outcome is where the rollout stands, in one sentence; Reason is why it rolled back.
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`

	Waves         string  `json:"waves"`
	Targets       []int   `json:"targets"`
	Eligible      int     `json:"eligible"`
	NodesSwitched int     `json:"nodesSwitched"`
	SoakSeconds   float64 `json:"soakSeconds"`
	BudgetPercent float64 `json:"budgetPercent"`
	BudgetSeats   float64 `json:"budgetSeats"`
	// CapacitySeats is the API servers' seats summed over replicas; 0 when the state predates it.
	CapacitySeats float64 `json:"capacitySeats,omitempty"`
	FlowSchema    string  `json:"flowSchema"`
	PriorityLevel string  `json:"priorityLevel"`

	// Steps are the soaks that decided, in order: the baseline (updates), each wave that
	// proceeded, and the one that halted.
	Steps   []Step    `json:"steps"`
	Updated time.Time `json:"updated"`
}

// Step is one soak's decision.
type Step struct {
	// Wave is 0 for the baseline.
	Wave  int    `json:"wave"`
	Label string `json:"label"`
	// Old and New count the agents of each version measured; Nodes is the wave's cumulative
	// node target (0 for the baseline).
	Nodes int `json:"nodes"`
	Old   int `json:"old"`
	New   int `json:"new"`
	// MeasuredSeats is the lane's steady seat demand (± SE, from Samples scrape intervals).
	MeasuredSeats float64 `json:"measuredSeats"`
	MeasuredSE    float64 `json:"measuredSE"`
	Samples       int     `json:"samples"`
	BurstPerAgent float64 `json:"burstPerAgent,omitempty"`
	// Predicted is the fleet's seat demand at 100% the decision rested on; nil without one.
	Predicted *Interval `json:"predicted,omitempty"`
	Verdict   string    `json:"verdict"`
	Headline  string    `json:"headline,omitempty"`
	ReadyAt   time.Time `json:"readyAt,omitzero"`
	DecidedAt time.Time `json:"decidedAt,omitzero"`
	// ReadyToDecision is how long the decision took once every agent was Ready, in seconds;
	// absent when either moment is unknown.
	ReadyToDecision float64 `json:"readyToDecisionSeconds,omitempty"`
}

// Interval is an estimate with its 95% interval, in seats.
type Interval struct {
	Seats float64 `json:"seats"`
	Low   float64 `json:"low"`
	High  float64 `json:"high"`
}

// Verdicts of a step.
const (
	Proceeded = "proceed"
	Halted    = "halt"
)

// FromState builds the report of the rollout of namespace/name from its state.
func FromState(namespace, name string, st state.State) Report {
	r := Report{
		Namespace: namespace, DaemonSet: name, ID: st.ID, Kind: string(st.Kind), Phase: string(st.Phase), Paused: st.Paused,
		Reason: st.Reason, Waves: st.WavesSpec, Targets: append([]int(nil), st.Targets...), Eligible: st.Eligible,
		NodesSwitched: st.Done, SoakSeconds: st.Soak.Seconds(), BudgetPercent: st.BudgetPercent, BudgetSeats: st.BudgetSeats,
		CapacitySeats: st.CapacitySeats, FlowSchema: st.Lane.FlowSchema, PriorityLevel: st.Lane.PriorityLevel,
		Steps: []Step{}, Updated: st.Updated,
	}
	for _, rec := range st.History {
		r.Steps = append(r.Steps, step(rec, st, Proceeded))
	}
	if st.Halted != nil {
		r.Steps = append(r.Steps, step(*st.Halted, st, Halted))
	}
	r.Outcome = outcome(st)
	return r
}

func step(rec state.WaveRecord, st state.State, verdict string) Step {
	s := Step{Wave: rec.Wave, Label: "baseline", Old: rec.Old, New: rec.New, MeasuredSeats: rec.Seats, MeasuredSE: rec.SE,
		Samples: rec.Samples, BurstPerAgent: rec.BurstPeakPerAgent, Verdict: verdict, Headline: rec.Headline,
		ReadyAt: rec.ReadyAt, DecidedAt: rec.At}
	if rec.Wave > 0 {
		s.Label = fmt.Sprintf("wave %d", rec.Wave)
		if rec.Wave <= len(st.Targets) {
			s.Nodes = st.Targets[rec.Wave-1]
		}
	}
	if rec.Predicted != 0 || rec.PredictedHigh != 0 {
		s.Predicted = &Interval{Seats: rec.Predicted, Low: rec.PredictedLow, High: rec.PredictedHigh}
	}
	if !rec.ReadyAt.IsZero() && !rec.At.IsZero() && !rec.At.Before(rec.ReadyAt) {
		s.ReadyToDecision = rec.At.Sub(rec.ReadyAt).Seconds()
	}
	return s
}

func outcome(st state.State) string {
	last := len(st.Targets)
	switch {
	case st.Phase == state.Complete:
		return fmt.Sprintf("complete: all %d eligible nodes run the new pods; the update strategy is restored and the lane removed", st.Eligible)
	case st.Phase == state.RolledBack && st.Kind == state.Create:
		return fmt.Sprintf("rolled back in wave %d of %d: the new DaemonSet, its pods and its lane are gone (%s)", st.Wave, last, st.Reason)
	case st.Phase == state.RolledBack && st.Wave == 0:
		return fmt.Sprintf("rolled back during the baseline, before any pod changed (%s)", st.Reason)
	case st.Phase == state.RolledBack:
		return fmt.Sprintf("rolled back in wave %d of %d: the %d switched nodes run the previous template again (%s)", st.Wave, last, st.Done, st.Reason)
	case st.Phase == state.RollingBack:
		return fmt.Sprintf("rolling back (%s); `bulkhead rollout resume` finishes it if no bulkhead is running it", st.Reason)
	case st.Paused:
		return fmt.Sprintf("paused in wave %d of %d (%s), %d of %d nodes switched", st.Wave, last, st.Phase, st.Done, st.Eligible)
	case st.Phase == state.Baseline:
		return "in progress: measuring the current version before wave 1"
	default:
		return fmt.Sprintf("in progress: wave %d of %d (%s), %d of %d nodes switched", st.Wave, last, st.Phase, st.Done, st.Eligible)
	}
}

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write JSON report: %w", err)
	}
	return nil
}
