package controller

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// SteadyDemand is a DaemonSet's measured steady demand on the API servers with its whole
// fleet running, in seats summed over the API servers, read from its completed rollout: the
// last recorded wave, scaled to every eligible node when it did not cover them all. ok is
// false when the state holds no measurement. This is the one place that reads the history
// for compartments; when the rollout core records more resources, this is what changes.
func SteadyDemand(st state.State) (seats float64, ok bool) {
	n := len(st.History)
	if n == 0 {
		return 0, false
	}
	rec := st.History[n-1]
	steady := rec.Resources[check.Seats].Steady
	agents := rec.New + rec.Old
	if agents <= 0 || steady.Samples == 0 {
		return 0, false
	}
	if st.Eligible > agents {
		return steady.Mean * float64(st.Eligible) / float64(agents), true
	}
	return steady.Mean, true
}

// Compartment is one DaemonSet's standing compartment as it should be.
type Compartment struct {
	Namespace, DaemonSet string
	Name                 string
	ServiceAccount       apf.Subject
	// Seats per API server, and the server's seats it is a share of.
	Seats, ServerSeats int
}

// Owner is the compartment's owner annotation (apf.OwnerAnnotation).
func (c Compartment) Owner() string { return "daemonset/" + c.Namespace + "/" + c.DaemonSet }

// DesiredCompartments works out every compartment that should exist: one per DaemonSet whose
// governing policy has compartments on and whose last rollout completed with a measurement.
// A compartment that exists stays, at its size, while a later rollout of its DaemonSet is under
// way or after it rolled back: the agents it contains still run (the rollout's lane takes
// precedence while there is one). current maps compartment names to the seats they were
// sized for (hysteresis); replicas is how many API servers share the demand. Pure.
func DesiredCompartments(daemonSets []*appsv1.DaemonSet, policyFor func(*appsv1.DaemonSet) (*v1alpha1.RolloutPolicy, error),
	current map[string]int, replicas int) ([]Compartment, error) {
	var out []Compartment
	var errs []error
	for _, ds := range daemonSets {
		policy, err := policyFor(ds)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if policy == nil || !policy.Spec.Compartments || ds.DeletionTimestamp != nil {
			continue
		}
		st, found, err := state.Decode(ds.Annotations)
		if err != nil || !found || st.Limits[check.Seats].Capacity <= 0 {
			continue
		}
		replicas := max(1, replicas)
		serverSeats := int(st.Limits[check.Seats].Capacity) / replicas
		name := apf.CompartmentName(ds.Namespace, ds.Name)
		steady, ok := SteadyDemand(st)
		if st.Phase != state.Complete || !ok {
			if seats, exists := current[name]; exists && seats > 0 {
				out = append(out, Compartment{Namespace: ds.Namespace, DaemonSet: ds.Name, Name: name,
					ServiceAccount: execute.ServiceAccountOf(ds), Seats: seats, ServerSeats: serverSeats})
			}
			continue
		}
		sizing := apf.DefaultCompartmentSizing
		sizing.MaxSeats = max(sizing.MinSeats, serverSeats/10)
		seats, _, err := apf.SizeCompartment(current[name], steady/float64(replicas), sizing)
		if err != nil {
			errs = append(errs, fmt.Errorf("compartment of %s/%s: %w", ds.Namespace, ds.Name, err))
			continue
		}
		out = append(out, Compartment{Namespace: ds.Namespace, DaemonSet: ds.Name, Name: name,
			ServiceAccount: execute.ServiceAccountOf(ds), Seats: seats, ServerSeats: serverSeats})
	}
	return out, errors.Join(errs...)
}

// CurrentCompartments reads the compartments that exist from the priority levels: name →
// seats they were sized for.
func CurrentCompartments(levels []*flowcontrolv1.PriorityLevelConfiguration) map[string]int {
	out := map[string]int{}
	for _, l := range levels {
		if l.Labels[apf.PurposeLabel] != string(apf.PurposeCompartment) || !apf.IsManaged(l) {
			continue
		}
		seats, _ := strconv.Atoi(l.Annotations[apf.SeatsAnnotation])
		out[l.Name] = seats
	}
	return out
}

// applyCompartments makes the cluster hold exactly the desired compartments: it applies a
// compartment that is missing or resized (server-side apply, through apf) and deletes those
// of DaemonSets that are gone or no longer qualify. It writes nothing when nothing changed.
func applyCompartments(ctx context.Context, client kubernetes.Interface, desired []Compartment, current map[string]int,
	schemas map[string]bool, levels []*flowcontrolv1.PriorityLevelConfiguration) (changes []string, err error) {
	want := map[string]bool{}
	var errs []error
	for _, c := range desired {
		want[c.Name] = true
		seats, exists := current[c.Name]
		if exists && seats == c.Seats && schemas[c.Name] {
			continue
		}
		others := make([]flowcontrolv1.PriorityLevelConfiguration, 0, len(levels))
		for _, l := range levels {
			others = append(others, *l)
		}
		shares, err := apf.SharesForSeats(c.ServerSeats, apf.SumShares(others, c.Name), c.Seats)
		if err != nil {
			errs = append(errs, fmt.Errorf("compartment %s: %w", c.Name, err))
			continue
		}
		pl, fs, err := apf.CompartmentObjects(c.Name, c.Owner(), c.ServiceAccount, shares, c.Seats)
		if err == nil {
			_, err = apf.ApplyPriorityLevel(ctx, client.FlowcontrolV1(), pl)
		}
		if err == nil {
			_, err = apf.ApplyFlowSchema(ctx, client.FlowcontrolV1(), fs)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		changes = append(changes, fmt.Sprintf("compartment %s: %d seats per API server (was %d)", c.Name, c.Seats, seats))
	}
	stale := map[string]bool{}
	for name := range current {
		stale[name] = !want[name]
	}
	for name := range schemas {
		if !want[name] {
			stale[name] = true
		}
	}
	for name, gone := range stale {
		if !gone {
			continue
		}
		// The schema first: the agents fall back to their usual flow before the level goes.
		if err := apf.DeleteFlowSchema(ctx, client.FlowcontrolV1(), name); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := apf.DeletePriorityLevel(ctx, client.FlowcontrolV1(), name); err != nil {
			errs = append(errs, err)
			continue
		}
		changes = append(changes, "compartment "+name+" removed")
	}
	return changes, errors.Join(errs...)
}

// compartmentSeats keys desired compartments for the metrics.
func compartmentSeats(desired []Compartment) map[[2]string]int {
	out := map[[2]string]int{}
	for _, c := range desired {
		out[[2]string{c.Namespace, c.DaemonSet}] = c.Seats
	}
	return out
}
