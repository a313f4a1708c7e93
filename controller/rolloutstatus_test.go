package controller

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/controller/hold"
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/predict"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

func TestARolloutStatusShowsPhaseWaveAndThePredictionAgainstTheBudget(t *testing.T) {
	held := heldDaemonSet("agents", "agent")
	if s, ok, err := StatusOf(held); err != nil || !ok || s.Phase != "Held" || !strings.Contains(s.Message, "waiting for the controller") {
		t.Fatalf("a held DaemonSet without a rollout: %+v, %v, %v", s, ok, err)
	}
	free := heldDaemonSet("agents", "free")
	delete(free.Annotations, hold.HeldAnnotation)
	if _, ok, err := StatusOf(free); ok || err != nil {
		t.Fatalf("a DaemonSet bulkhead never touched shows a status (%v, %v)", ok, err)
	}

	ds := withState(t, held, state.Soaking, true, state.Guard)
	st, _, _ := state.Decode(ds.Annotations)
	st.Targets, st.Eligible, st.Wave, st.Done = []int{2, 10, 200}, 200, 1, 2
	st.Limits = check.DefaultBudget.Limits(check.Capacity{CPU: 2, CPUFrom: "GOMAXPROCS", Seats: 600})
	measured := func(mean float64) check.Measured {
		return check.Measured{Steady: predict.Estimate{Mean: mean / 100, Samples: 5}, Predicted: &check.Interval95{Mean: mean, Low: mean * 0.8, High: mean * 1.2}}
	}
	rec := state.WaveRecord{New: 2, Headline: "wave 1: 2 agents use 0.0500 cores; 200 agents would need 5.00 cores — halting",
		// Seats are further over their budget than CPU (15× against 10×): CPU, which the decision
		// leads with, is the one shown.
		Resources: map[check.Resource]check.Measured{check.CPU: measured(5), check.Seats: measured(900)}}
	st, err := st.Decided(analyze.Halt, rec, "cpu: 200 agents would need 5.00 cores, over the budget of 0.500 cores", st.Updated.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ann, err := state.Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	ds.Annotations = ann
	s, ok, err := StatusOf(ds)
	if err != nil || !ok {
		t.Fatalf("StatusOf: %v, %v", ok, err)
	}
	want := v1alpha1.RolloutStatusStatus{RolloutID: "r1", Mode: "guard", Kind: "create", Revision: st.Revision, Phase: "RollingBack",
		Wave: "1/3", Nodes: "2/200", Resource: "cpu", Predicted: "5.00 cores", Budget: "0.500 cores (25%)",
		Message: "cpu: 200 agents would need 5.00 cores, over the budget of 0.500 cores"}
	s.Resources, s.Updated = nil, nil
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("status\n got %+v\nwant %+v", s, want)
	}
	full, _, _ := StatusOf(ds)
	if len(full.Resources) != 2 || full.Resources[1].Resource != "seats" || full.Resources[1].Budget != 60 || full.Resources[1].Predicted != 900 || full.Updated == nil {
		t.Fatalf("per resource: %+v (updated %v); want CPU and seats with their budgets", full.Resources, full.Updated)
	}
}
