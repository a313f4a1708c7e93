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
	// Adopt: start a rollout of the DaemonSet's current template (superseding a rollout of an
	// earlier one that is under way).
	Adopt Action = "adopt"
	// Step: a rollout the controller drives is under way.
	Step Action = "step"
	// Release: let a held DaemonSet go without a rollout (it was opted out).
	Release Action = "release"
)

// Decide says what to do for a DaemonSet governed by policy (nil when no policy selects it
// now). Pure: the reconciler feeds it what the informers hold.
//
// The controller drives the rollouts of DaemonSets admission holds (the held annotation) and,
// in observe mode, of those the DaemonSet controller rolls out by itself: a rollout started by
// `bulkhead rollout apply` belongs to that command. A rollout records the revision of the
// template it rolls out (state.State.Revision): a held DaemonSet whose template has another
// one gets a new rollout, which supersedes the one under way (unless that one is rolling back:
// it ends first). A held DaemonSet whose policy is gone is still driven, with the product's
// defaults: releasing it would roll it out unguarded.
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
	ours := found && (st.Held || st.Observing())
	under := found && !st.Terminal()

	if hold.Held(ds) == "" {
		switch {
		case under && st.Observing() && st.Revision != revision:
			return Adopt, fmt.Sprintf("observe: revision %s supersedes revision %s, observed by rollout %s", revision, st.Revision, st.ID), nil
		case under && st.Observing():
			return Step, fmt.Sprintf("observing rollout %s in phase %s", st.ID, st.Phase), nil
		case under:
			return None, "a rollout of bulkhead rollout apply", nil
		case policy != nil && policy.EffectiveMode() == v1alpha1.Observe && rollingByItself(ds) && (!found || st.Revision != revision):
			return Adopt, "observe: the DaemonSet controller is rolling out revision " + revision, nil
		}
		return None, "not held", nil
	}
	if ds.Labels[v1alpha1.OptOutLabel] == "true" && !under {
		// Admission no longer holds it; what it held is let go (a rollout under way goes on:
		// abort it to stop it).
		return Release, "opted out (" + v1alpha1.OptOutLabel + "=true) while held", nil
	}
	switch {
	case under && ours && st.Revision != revision && st.Phase != state.RollingBack:
		return Adopt, fmt.Sprintf("revision %s supersedes revision %s of rollout %s (phase %s)", revision, st.Revision, st.ID, st.Phase), nil
	case under && ours:
		return Step, fmt.Sprintf("rollout %s in phase %s", st.ID, st.Phase), nil
	case under:
		return None, fmt.Sprintf("rollout %s belongs to bulkhead rollout apply", st.ID), nil
	case found && st.Revision == revision:
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
