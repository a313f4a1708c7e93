package controller

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/predict"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

func completed(t *testing.T, name string, phase state.Phase, history ...state.WaveRecord) *appsv1.DaemonSet {
	t.Helper()
	ds := withState(t, heldDaemonSet("agents", name), phase, true, state.Guard)
	st, _, err := state.Decode(ds.Annotations)
	if err != nil {
		t.Fatal(err)
	}
	st.Eligible, st.Targets, st.History = 200, []int{2, 200}, history
	st.Limits = map[check.Resource]check.Limit{check.Seats: {Resource: check.Seats, Share: 10, Capacity: 1200, Value: 120}}
	ann, err := state.Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	ds.Annotations = ann
	ds.Spec.Template.Spec.ServiceAccountName = "agent"
	return ds
}

// seats is a wave record of new agents measured at a steady seat demand over samples intervals.
func seats(new int, mean float64, samples int) state.WaveRecord {
	return state.WaveRecord{New: new, Resources: map[check.Resource]check.Measured{
		check.Seats: {Steady: predict.Estimate{Mean: mean, SE: 0.01, Samples: samples}}}}
}

func TestSteadyDemandScalesTheLastWaveToTheFleet(t *testing.T) {
	st := state.State{Eligible: 200, History: []state.WaveRecord{seats(2, 0.1, 4), seats(50, 2.5, 6)}}
	if got, ok := SteadyDemand(st); !ok || got != 10 {
		t.Fatalf("SteadyDemand = %v, %v; want 2.5 seats × 200/50 = 10", got, ok)
	}
	if _, ok := SteadyDemand(state.State{Eligible: 10}); ok {
		t.Fatalf("no history, no demand")
	}
	if _, ok := SteadyDemand(state.State{Eligible: 10, History: []state.WaveRecord{seats(10, 1, 0)}}); ok {
		t.Fatalf("a wave without steady samples measured nothing")
	}
}

func TestCompartmentsFollowCompletedRolloutsOfPoliciesThatWantThem(t *testing.T) {
	on := &v1alpha1.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: "on"}, Spec: v1alpha1.RolloutPolicySpec{Compartments: true}}
	off := &v1alpha1.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: "off"}}
	full := seats(200, 6, 5)
	daemonSets := []*appsv1.DaemonSet{
		completed(t, "done", state.Complete, full),
		completed(t, "rolling", state.Soaking, full),
		completed(t, "halted", state.RolledBack, full),
		completed(t, "unmeasured", state.Complete),
		completed(t, "not-wanted", state.Complete, full),
	}
	policyFor := func(ds *appsv1.DaemonSet) (*v1alpha1.RolloutPolicy, error) {
		if ds.Name == "not-wanted" {
			return off, nil
		}
		return on, nil
	}
	// Two API servers of 600 seats share 6 seats of demand: 3 each, ×2 headroom.
	got, err := DesiredCompartments(daemonSets, policyFor, map[string]int{}, 2)
	if err != nil || len(got) != 1 {
		t.Fatalf("DesiredCompartments = %+v, %v; want only the completed, measured DaemonSet of a policy with compartments", got, err)
	}
	c := got[0]
	if c.DaemonSet != "done" || c.Seats != 6 || c.ServerSeats != 600 || c.Name != apf.CompartmentName("agents", "done") || c.ServiceAccount != apf.ServiceAccount("agents", "agent") {
		t.Fatalf("compartment %+v", c)
	}
	// Hysteresis carries over through the size recorded on the level.
	again, _ := DesiredCompartments(daemonSets[:1], policyFor, map[string]int{c.Name: 10}, 2)
	if again[0].Seats != 10 {
		t.Fatalf("a 10-seat compartment for 6 seats of need shrank to %d; it should keep its size", again[0].Seats)
	}
	// A compartment that exists stays at its size through a later rollout and its rollback.
	kept, _ := DesiredCompartments(daemonSets[1:3], policyFor, map[string]int{apf.CompartmentName("agents", "rolling"): 4, apf.CompartmentName("agents", "halted"): 3}, 2)
	if len(kept) != 2 || kept[0].Seats != 4 || kept[1].Seats != 3 {
		t.Fatalf("compartments through a later rollout: %+v; want both kept at their size", kept)
	}
}

func TestPolicyCounts(t *testing.T) {
	on := &v1alpha1.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: "on"}}
	free := heldDaemonSet("agents", "free")
	free.Annotations = map[string]string{}
	daemonSets := []*appsv1.DaemonSet{
		heldDaemonSet("agents", "held"),
		completed(t, "rolling", state.Soaking),
		completed(t, "halted", state.RolledBack),
		completed(t, "done", state.Complete),
		free,
	}
	counts := PolicyCounts(daemonSets, func(*appsv1.DaemonSet) (*v1alpha1.RolloutPolicy, error) { return on, nil })
	if got := counts["on"]; got.Guarded != 5 || got.Rolling != 2 || got.Halted != 1 {
		t.Fatalf("counts %+v; want 5 guarded, 2 rolling (held + soaking), 1 halted", got)
	}
}
