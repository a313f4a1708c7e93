package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/predict"
)

// stateV1 is the state as bulkhead wrote it before it gated in CPU and memory: one budget, in
// seats, and each wave's measurement in seats. Rollouts started by an older bulkhead are read
// through it and carried on as the current version.
type stateV1 struct {
	Version          int                            `json:"v"`
	ID               string                         `json:"id"`
	Kind             Kind                           `json:"kind"`
	Phase            Phase                          `json:"phase"`
	Paused           bool                           `json:"paused,omitempty"`
	WavesSpec        string                         `json:"waves"`
	Targets          []int                          `json:"targets"`
	Eligible         int                            `json:"eligible"`
	Wave             int                            `json:"wave"`
	Done             int                            `json:"done"`
	WaveStarted      time.Time                      `json:"waveStarted,omitzero"`
	SoakStarted      time.Time                      `json:"soakStarted,omitzero"`
	Soak             Duration                       `json:"soak"`
	BudgetPercent    float64                        `json:"budgetPercent"`
	BudgetSeats      float64                        `json:"budgetSeats"`
	CapacitySeats    float64                        `json:"capacitySeats,omitempty"`
	Lane             Lane                           `json:"lane"`
	NodeLabel        string                         `json:"nodeLabel,omitempty"`
	OriginalStrategy appsv1.DaemonSetUpdateStrategy `json:"originalStrategy"`
	OriginalHash     string                         `json:"originalHash,omitempty"`
	Before           []FlowBaseline                 `json:"before,omitempty"`
	History          []waveRecordV1                 `json:"history,omitempty"`
	Halted           *waveRecordV1                  `json:"halted,omitempty"`
	Reason           string                         `json:"reason,omitempty"`
	Updated          time.Time                      `json:"updated"`
}

type waveRecordV1 struct {
	Wave              int       `json:"wave"`
	Old               int       `json:"old"`
	New               int       `json:"new"`
	Seats             float64   `json:"seats"`
	SE                float64   `json:"se"`
	Samples           int       `json:"samples"`
	BurstPeakPerAgent float64   `json:"burst,omitempty"`
	MaxNextWave       int       `json:"maxNextWave,omitempty"`
	Predicted         float64   `json:"predicted,omitempty"`
	PredictedLow      float64   `json:"predictedLow,omitempty"`
	PredictedHigh     float64   `json:"predictedHigh,omitempty"`
	Headline          string    `json:"headline,omitempty"`
	ReadyAt           time.Time `json:"readyAt,omitzero"`
	At                time.Time `json:"at,omitzero"`
}

// decodeV1 reads a version 1 state and carries it over: its budget becomes a seat budget, each
// wave's seats the seat record. Its rollout goes on gated in seats only, as it began: the CPU and
// memory capacity it never measured are not invented.
func decodeV1(raw string) (State, error) {
	var v1 stateV1
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v1); err != nil {
		return State{}, err
	}
	s := State{
		Version: version, ID: v1.ID, Kind: v1.Kind, Phase: v1.Phase, Paused: v1.Paused,
		WavesSpec: v1.WavesSpec, Targets: v1.Targets, Eligible: v1.Eligible, Wave: v1.Wave, Done: v1.Done,
		WaveStarted: v1.WaveStarted, SoakStarted: v1.SoakStarted, Soak: v1.Soak,
		Budget: check.Budget{check.Seats: v1.BudgetPercent},
		Limits: map[check.Resource]check.Limit{check.Seats: {Resource: check.Seats, Share: v1.BudgetPercent,
			Capacity: v1.CapacitySeats, Value: v1.BudgetSeats, From: "APF"}},
		Lane: v1.Lane, NodeLabel: v1.NodeLabel, OriginalStrategy: v1.OriginalStrategy, OriginalHash: v1.OriginalHash,
		Before: v1.Before, Reason: v1.Reason, Updated: v1.Updated,
	}
	if v1.CapacitySeats == 0 && v1.BudgetPercent > 0 {
		// States older still did not record the capacity; the budget is a share of it.
		l := s.Limits[check.Seats]
		l.Capacity = v1.BudgetSeats * 100 / v1.BudgetPercent
		s.Limits[check.Seats] = l
	}
	for _, r := range v1.History {
		s.History = append(s.History, r.record())
	}
	if v1.Halted != nil {
		h := v1.Halted.record()
		s.Halted = &h
	}
	return s, nil
}

func (r waveRecordV1) record() WaveRecord {
	m := check.Measured{Steady: predict.Estimate{Mean: r.Seats, SE: r.SE, Samples: r.Samples}, BurstPeakPerAgent: r.BurstPeakPerAgent}
	if r.Predicted != 0 || r.PredictedHigh != 0 {
		m.Predicted = &check.Interval95{Mean: r.Predicted, Low: r.PredictedLow, High: r.PredictedHigh}
	}
	return WaveRecord{Wave: r.Wave, Old: r.Old, New: r.New, Resources: map[check.Resource]check.Measured{check.Seats: m},
		MaxNextWave: r.MaxNextWave, Headline: r.Headline, ReadyAt: r.ReadyAt, At: r.At}
}

// decodeVersion reads a state of any version bulkhead knows.
func decodeVersion(v int, raw string) (State, error) {
	switch v {
	case 1:
		return decodeV1(raw)
	case 2, version:
		// Version 3 only added optional fields (mode, held, revision, wouldHalt, a shared
		// lane); a version 2 state reads as a guarded rollout of the CLI.
		var s State
		dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return State{}, err
		}
		s.Version = version
		return s, nil
	}
	return State{}, fmt.Errorf("state version %d is not supported (want 1 to %d); was it written by a newer bulkhead release?", v, version)
}
