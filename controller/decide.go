package controller

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/controller/hold"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Action is what the controller does for a DaemonSet now.
type Action string

const (
	// None: nothing to do until the DaemonSet changes.
	None Action = "none"
	// Adopt: start a rollout of the DaemonSet's current template.
	Adopt Action = "adopt"
	// Step: a rollout the controller drives is under way.
	Step Action = "step"
)

// Decide says what to do for a DaemonSet governed by policy (nil when no policy selects it
// now). Pure: the reconciler feeds it what the informers hold.
//
// The controller drives only rollouts of DaemonSets admission holds (the held annotation):
// a rollout started by `bulkhead rollout apply` belongs to that command. A held DaemonSet
// whose policy is gone is still driven, with the product's defaults: releasing it would roll
// it out unguarded.
func Decide(ds *appsv1.DaemonSet, policy *v1alpha1.RolloutPolicy) (Action, string, error) {
	if ds.DeletionTimestamp != nil {
		return None, "being deleted", nil
	}
	st, found, err := state.Decode(ds.Annotations)
	if err != nil {
		return None, "", fmt.Errorf("DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	revision, err := hold.Revision(ds.Spec.Template)
	if err != nil {
		return None, "", err
	}
	adopted := ds.Annotations[hold.AdoptedRevisionAnnotation]

	if hold.Held(ds) == "" {
		if policy != nil && policy.EffectiveMode() == v1alpha1.Observe && rollingByItself(ds) && adopted != revision &&
			(!found || st.Terminal()) {
			return Adopt, "observe: the DaemonSet controller is rolling out revision " + revision, nil
		}
		return None, "not held", nil
	}
	switch {
	case found && !st.Terminal():
		return Step, fmt.Sprintf("rollout %s in phase %s", st.ID, st.Phase), nil
	case found && adopted == revision:
		return None, fmt.Sprintf("rollout %s of revision %s is over (%s); held until the template changes", st.ID, revision, st.Phase), nil
	case policy == nil:
		return Adopt, "held with no policy selecting it now: guarded with the product's defaults", nil
	default:
		return Adopt, fmt.Sprintf("held (%s) under policy %s: revision %s", hold.Held(ds), policy.Name, revision), nil
	}
}

// rollingByItself reports whether the DaemonSet controller is replacing pods of a DaemonSet
// (a rolling update in progress, or a template it has not acted on yet).
func rollingByItself(ds *appsv1.DaemonSet) bool {
	return ds.Status.ObservedGeneration < ds.Generation || ds.Status.UpdatedNumberScheduled < ds.Status.DesiredNumberScheduled
}
