package report

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/check"
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
	// Budgets are the limits per resource (CPU, memory, seats): the share of the API servers'
	// capacity, summed over replicas, the DaemonSet may use at 100%.
	Budgets       []Budget `json:"budgets"`
	FlowSchema    string   `json:"flowSchema"`
	PriorityLevel string   `json:"priorityLevel"`

	// Steps are the soaks that decided, in order: the baseline, each wave that proceeded, and
	// the one that halted.
	Steps   []Step    `json:"steps"`
	Updated time.Time `json:"updated"`
}

// Budget is one resource's limit.
type Budget struct {
	Resource string `json:"resource"`
	// Unit is "cores", "bytes" or "seats".
	Unit string `json:"unit"`
	// Share is the budget in percent of Capacity; Used what the servers used before the
	// rollout; Limit what the DaemonSet may use at 100%.
	Share    float64 `json:"share"`
	Capacity float64 `json:"capacity,omitempty"`
	Used     float64 `json:"used,omitempty"`
	Limit    float64 `json:"limit"`
	// From says where the capacity came from (GOMAXPROCS, GOMEMLIMIT, a flag, APF).
	From string `json:"from,omitempty"`
	// Words is the limit as the rollout printed it, or why the resource could not be gated.
	Words string `json:"words"`
	// Gated is false when the capacity was not visible: the resource was measured, not gated.
	Gated bool `json:"gated"`
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
	// Resources holds per resource the lane's steady demand (± SE over Samples scrape
	// intervals), the start-up burst per agent and the prediction at 100% of the fleet.
	Resources map[string]StepResource `json:"resources"`
	// Utilization is the API servers' CPU utilisation in the steady window (0: unknown).
	Utilization float64   `json:"utilization,omitempty"`
	Verdict     string    `json:"verdict"`
	Headline    string    `json:"headline,omitempty"`
	ReadyAt     time.Time `json:"readyAt,omitzero"`
	DecidedAt   time.Time `json:"decidedAt,omitzero"`
	// ReadyToDecision is how long the decision took once every agent was Ready, in seconds;
	// absent when either moment is unknown.
	ReadyToDecision float64 `json:"readyToDecisionSeconds,omitempty"`
}

// StepResource is one resource's measurement and prediction in a step.
type StepResource struct {
	Measured      float64   `json:"measured"`
	MeasuredSE    float64   `json:"measuredSE"`
	Samples       int       `json:"samples"`
	BurstPerAgent float64   `json:"burstPerAgent,omitempty"`
	Predicted     *Interval `json:"predicted,omitempty"`
}

// Interval is an estimate with its 95% interval.
type Interval struct {
	Mean float64 `json:"mean"`
	Low  float64 `json:"low"`
	High float64 `json:"high"`
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
		NodesSwitched: st.Done, SoakSeconds: st.Soak.Seconds(), FlowSchema: st.Lane.FlowSchema, PriorityLevel: st.Lane.PriorityLevel,
		Budgets: []Budget{}, Steps: []Step{}, Updated: st.Updated,
	}
	for _, res := range check.Resources {
		l, ok := st.Limits[res]
		if !ok {
			continue
		}
		r.Budgets = append(r.Budgets, Budget{Resource: string(res), Unit: Unit(res), Share: l.Share, Capacity: l.Capacity,
			Used: l.Used, Limit: l.Value, From: l.From, Words: l.String(), Gated: l.Known()})
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

// Unit names a resource's unit as the report and the controller's RolloutStatus write it.
func Unit(r check.Resource) string {
	switch r {
	case check.CPU:
		return "cores"
	case check.Memory:
		return "bytes"
	}
	return "seats"
}

func step(rec state.WaveRecord, st state.State, verdict string) Step {
	s := Step{Wave: rec.Wave, Label: "baseline", Old: rec.Old, New: rec.New, Resources: map[string]StepResource{},
		Utilization: rec.Utilization, Verdict: verdict, Headline: rec.Headline, ReadyAt: rec.ReadyAt, DecidedAt: rec.At}
	if rec.Wave > 0 {
		s.Label = fmt.Sprintf("wave %d", rec.Wave)
		if rec.Wave <= len(st.Targets) {
			s.Nodes = st.Targets[rec.Wave-1]
		}
	}
	for res, m := range rec.Resources {
		sr := StepResource{Measured: m.Steady.Mean, MeasuredSE: m.Steady.SE, Samples: m.Steady.Samples, BurstPerAgent: m.BurstPeakPerAgent}
		if p := m.Predicted; p != nil {
			sr.Predicted = &Interval{Mean: p.Mean, Low: p.Low, High: p.High}
		}
		s.Resources[string(res)] = sr
	}
	if !rec.ReadyAt.IsZero() && !rec.At.IsZero() && !rec.At.Before(rec.ReadyAt) {
		s.ReadyToDecision = rec.At.Sub(rec.ReadyAt).Seconds()
	}
	return s
}

func outcome(st state.State) string {
	last := len(st.Targets)
	switch {
	case st.Observing() && st.WouldHalt != nil:
		return fmt.Sprintf("observed: the DaemonSet controller rolled out %d nodes by itself; guard would have halted it (%s)", st.Done, st.Reason)
	case st.Observing() && st.Phase == state.Complete:
		return fmt.Sprintf("observed: the DaemonSet controller rolled out %d nodes by itself, within the budget", st.Done)
	case st.Observing():
		return fmt.Sprintf("observing (%s): the DaemonSet controller rolls the DaemonSet out by itself; nothing is held", st.Phase)
	case st.Phase == state.Complete:
		return fmt.Sprintf("complete: all %d eligible nodes run the new pods; the update strategy is restored and the lane removed", st.Eligible)
	case st.Phase == state.RolledBack && st.Kind == state.Create && st.Held:
		return fmt.Sprintf("rolled back in wave %d of %d: the new DaemonSet is kept, held and without pods, so that re-applying it changes nothing (%s)", st.Wave, last, st.Reason)
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
