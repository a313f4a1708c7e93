package controller

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/controller/hold"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

func withState(t *testing.T, ds *appsv1.DaemonSet, phase state.Phase) *appsv1.DaemonSet {
	t.Helper()
	st, err := state.New(state.Start{ID: "r1", Kind: state.Create, WavesSpec: "100%", Targets: []int{1}, Eligible: 1, Soak: time.Minute,
		Budget: check.DefaultBudget, Limits: check.DefaultBudget.Limits(check.Capacity{Seats: 60}), Lane: state.Lane{FlowSchema: "l", PriorityLevel: "l"}, NodeLabel: "gate"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st.Phase = phase
	if phase != state.Baseline {
		st.Wave = 1
	}
	ann, err := state.Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	ds = ds.DeepCopy()
	for k, v := range ann {
		ds.Annotations[k] = v
	}
	return ds
}

func adoptedAt(t *testing.T, ds *appsv1.DaemonSet) *appsv1.DaemonSet {
	t.Helper()
	rev, err := hold.Revision(ds.Spec.Template)
	if err != nil {
		t.Fatal(err)
	}
	ds = ds.DeepCopy()
	ds.Annotations[hold.AdoptedRevisionAnnotation] = rev
	return ds
}

func TestDecide(t *testing.T) {
	guard := &v1alpha1.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: "agents"}}
	observe := &v1alpha1.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: "watch"}, Spec: v1alpha1.RolloutPolicySpec{Mode: v1alpha1.Observe}}
	held := heldDaemonSet("agents", "agent")
	free := heldDaemonSet("agents", "agent")
	free.Annotations = map[string]string{}
	rolling := free.DeepCopy()
	rolling.Generation, rolling.Status.ObservedGeneration = 2, 1
	v2 := adoptedAt(t, withState(t, held, state.RolledBack))
	v2.Spec.Template.Spec.Containers[0].Image = "agent:v2"
	deleting := held.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}

	tests := []struct {
		name   string
		ds     *appsv1.DaemonSet
		policy *v1alpha1.RolloutPolicy
		want   Action
		reason string
	}{
		{"held, new", held, guard, Adopt, "under policy agents"},
		{"held, no policy any more", held, nil, Adopt, "product's defaults"},
		{"held, rollout under way", adoptedAt(t, withState(t, held, state.Soaking)), guard, Step, "phase Soaking"},
		{"held, rolling back", adoptedAt(t, withState(t, held, state.RollingBack)), guard, Step, "phase RollingBack"},
		{"held, halted, same template re-applied", adoptedAt(t, withState(t, held, state.RolledBack)), guard, None, "held until the template changes"},
		{"held, halted, a new template", v2, guard, Adopt, "revision"},
		{"not held", free, guard, None, "not held"},
		{"a rollout of the CLI", withState(t, free, state.Rolling), guard, None, "not held"},
		{"observe, rolling by itself", rolling, observe, Adopt, "observe"},
		{"observe, already observed", adoptedAt(t, withState(t, rolling, state.Complete)), observe, None, "not held"},
		{"observe, at rest", free, observe, None, "not held"},
		{"being deleted", deleting, guard, None, "being deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason, err := Decide(tt.ds, tt.policy)
			if err != nil || got != tt.want || !strings.Contains(reason, tt.reason) {
				t.Fatalf("Decide = %s (%q), %v; want %s with a reason containing %q", got, reason, err, tt.want, tt.reason)
			}
		})
	}
}

func TestDecideRefusesAnUnreadableState(t *testing.T) {
	ds := heldDaemonSet("agents", "agent")
	ds.Annotations[state.Annotation] = "{not json"
	if _, _, err := Decide(ds, nil); err == nil || !strings.Contains(err.Error(), "agents/agent") {
		t.Fatalf("error %v, want one naming the DaemonSet", err)
	}
}

func TestReasonKind(t *testing.T) {
	for reason, want := range map[string]string{
		"SLO breached: GET resource p99 1.2s > 1s (80 requests)":                                                "slo",
		"collateral damage: flow schema x (priority level y) is being rejected, 0.20/s (before the rollout: 0)": "collateral",
		"1 of 2 new agents Ready after 3m, past the 3m allowed":                                                 "agents",
		"200 agents would need 62 seats (95%: 23–101) against a budget of 59":                                   "budget",
		"no usable steady-state measurement: 1 steady samples, want 3 after 3m":                                 "steady-data",
		"soaking: 10s of 60s": "soaking",
		"":                    "none",
		"something new":       "other",
	} {
		if got := ReasonKind(reason); got != want {
			t.Errorf("ReasonKind(%q) = %s, want %s", reason, got, want)
		}
	}
}
