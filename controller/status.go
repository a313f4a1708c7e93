package controller

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/controller/hold"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// PolicyCounts counts, per policy name, the DaemonSets it governs: guarded, under a rollout,
// and halted (their last rollout rolled back). Pure.
func PolicyCounts(daemonSets []*appsv1.DaemonSet, policyFor func(*appsv1.DaemonSet) (*v1alpha1.RolloutPolicy, error)) map[string]v1alpha1.RolloutPolicyStatus {
	out := map[string]v1alpha1.RolloutPolicyStatus{}
	for _, ds := range daemonSets {
		p, err := policyFor(ds)
		if err != nil || p == nil {
			continue
		}
		s := out[p.Name]
		s.Guarded++
		st, found, err := state.Decode(ds.Annotations)
		switch {
		case err == nil && found && !st.Terminal():
			s.Rolling++
		case err == nil && found && st.Phase == state.RolledBack:
			s.Halted++
		case !found && hold.Held(ds) != "":
			s.Rolling++ // held, waiting for its rollout to start
		}
		out[p.Name] = s
	}
	return out
}

// nextStatus is the status a policy should show: the counts and a Ready condition.
func nextStatus(p *v1alpha1.RolloutPolicy, counts v1alpha1.RolloutPolicyStatus, settingsErr error) v1alpha1.RolloutPolicyStatus {
	s := *p.Status.DeepCopy()
	s.ObservedGeneration, s.Guarded, s.Rolling, s.Halted = p.Generation, counts.Guarded, counts.Rolling, counts.Halted
	cond := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: p.Generation,
		Reason: "Accepted", Message: fmt.Sprintf("mode %s; governs %d DaemonSets (%d under a rollout or held, %d halted)",
			p.EffectiveMode(), counts.Guarded, counts.Rolling, counts.Halted)}
	if settingsErr != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "InvalidSettings", settingsErr.Error()
	}
	apimeta.SetStatusCondition(&s.Conditions, cond) // keeps lastTransitionTime unless the status flips
	return s
}

// writePolicyStatuses updates the status of every policy whose status differs from what it
// should be; unchanged ones cost no request.
func writePolicyStatuses(ctx context.Context, client dynamic.Interface, policies []*v1alpha1.RolloutPolicy, counts map[string]v1alpha1.RolloutPolicyStatus) error {
	var errs []error
	for _, p := range policies {
		_, settingsErr := p.Settings()
		next := nextStatus(p, counts[p.Name], settingsErr)
		if reflect.DeepEqual(next, p.Status) {
			continue
		}
		updated := p.DeepCopy()
		updated.Status = next
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(updated)
		if err != nil {
			errs = append(errs, fmt.Errorf("RolloutPolicy %s: encode status: %w", p.Name, err))
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		u.SetAPIVersion(v1alpha1.GroupVersion.String())
		u.SetKind("RolloutPolicy")
		if _, err := client.Resource(v1alpha1.Resource).UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: hold.FieldManager}); err != nil {
			errs = append(errs, fmt.Errorf("RolloutPolicy %s: update status: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}
