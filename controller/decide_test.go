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

// withState gives ds a rollout's state in phase: of its current template (the revision) unless
// the template changes afterwards, the controller's when held, observing when mode says so.
func withState(t *testing.T, ds *appsv1.DaemonSet, phase state.Phase, held bool, mode state.Mode) *appsv1.DaemonSet {
	t.Helper()
	rev, err := hold.Revision(ds.Spec.Template)
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.New(state.Start{ID: "r1", Kind: state.Create, WavesSpec: "100%", Targets: []int{1}, Eligible: 1, Soak: time.Minute,
		Budget: check.DefaultBudget, Limits: check.DefaultBudget.Limits(check.Capacity{Seats: 60}), Lane: state.Lane{FlowSchema: "l", PriorityLevel: "l"},
		NodeLabel: "gate", Held: held, Mode: mode, Revision: rev}, time.Now())
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

// newTemplate is ds with a pod template of another revision.
func newTemplate(ds *appsv1.DaemonSet) *appsv1.DaemonSet {
	ds = ds.DeepCopy()
	ds.Spec.Template.Spec.Containers[0].Image = "agent:v2"
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
	optedOut := held.DeepCopy()
	optedOut.Labels = map[string]string{v1alpha1.OptOutLabel: "true"}
	deleting := held.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	guarded := func(phase state.Phase) *appsv1.DaemonSet { return withState(t, held, phase, true, state.Guard) }
	observed := func(phase state.Phase) *appsv1.DaemonSet { return withState(t, rolling, phase, false, state.Observe) }

	tests := []struct {
		name   string
		ds     *appsv1.DaemonSet
		policy *v1alpha1.RolloutPolicy
		want   Action
		reason string
	}{
		{"held, new", held, guard, Adopt, "under policy agents"},
		{"held, no policy any more", held, nil, Adopt, "product's defaults"},
		{"held, rollout under way", guarded(state.Soaking), guard, Step, "phase Soaking"},
		{"held, rolling back", guarded(state.RollingBack), guard, Step, "phase RollingBack"},
		{"held, halted, same template re-applied", guarded(state.RolledBack), guard, None, "held until the template changes"},
		{"held, halted, a new template", newTemplate(guarded(state.RolledBack)), guard, Adopt, "revision"},
		{"held, a new template during the rollout", newTemplate(guarded(state.Soaking)), guard, Adopt, "supersedes"},
		{"held, a new template during the rollback: the rollback ends first", newTemplate(guarded(state.RollingBack)), guard, Step, "phase RollingBack"},
		{"held, a rollout of the CLI under way", withState(t, held, state.Rolling, false, state.Guard), guard, None, "bulkhead rollout apply"},
		{"held after a rollout of the CLI, a new template", newTemplate(withState(t, held, state.Complete, false, state.Guard)), guard, Adopt, "revision"},
		{"not held", free, guard, None, "not held"},
		{"a rollout of the CLI", withState(t, free, state.Rolling, false, state.Guard), guard, None, "bulkhead rollout apply"},
		{"observe, rolling by itself", rolling, observe, Adopt, "observe"},
		{"observe, observing", observed(state.Soaking), observe, Step, "observing rollout r1"},
		{"observe, a new template while observing", newTemplate(observed(state.Soaking)), observe, Adopt, "supersedes"},
		{"observe, already observed", observed(state.Complete), observe, None, "not held"},
		{"observe, an earlier revision observed", newTemplate(observed(state.Complete)), observe, Adopt, "observe"},
		{"observe, at rest", free, observe, None, "not held"},
		{"being deleted", deleting, guard, None, "being deleted"},
		{"opted out while held", optedOut, nil, Release, "opted out"},
		{"opted out while held, halted", withState(t, optedOut, state.RolledBack, true, state.Guard), nil, Release, "opted out"},
		{"opted out during its rollout: the rollout goes on", withState(t, optedOut, state.Soaking, true, state.Guard), nil, Step, "phase Soaking"},
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
