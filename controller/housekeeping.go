package controller

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	flowcontrollisters "k8s.io/client-go/listers/flowcontrol/v1"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/controlplane"
)

// housekeeper keeps policy status and standing compartments in line with the caches, and
// removes the lanes of DaemonSets deleted mid-rollout: each pass reads only informer caches and
// writes only what changed.
type housekeeper struct {
	client     kubernetes.Interface
	dyn        dynamic.Interface
	daemonSets appslisters.DaemonSetLister
	levels     flowcontrollisters.PriorityLevelConfigurationLister
	schemas    flowcontrollisters.FlowSchemaLister
	lanes      flowcontrollisters.FlowSchemaLister
	apiservers discoverylisters.EndpointSliceLister
	policies   func() ([]*v1alpha1.RolloutPolicy, error)
	policyFor  func(*appsv1.DaemonSet) (*v1alpha1.RolloutPolicy, error)
	metrics    *Metrics
	logf       func(string, ...any)
}

func (h *housekeeper) run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		h.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *housekeeper) pass(ctx context.Context) {
	daemonSets, err := h.daemonSets.List(labels.Everything())
	if err != nil {
		h.logf("housekeeping: %v", err)
		return
	}
	if policies, err := h.policies(); err != nil {
		h.logf("housekeeping: %v", err)
	} else if err := writePolicyStatuses(ctx, h.dyn, policies, PolicyCounts(daemonSets, h.policyFor)); err != nil {
		h.logf("policy status: %v", err)
	}

	levels, err := h.levels.List(labels.Everything())
	if err != nil {
		h.logf("compartments: %v", err)
		return
	}
	schemas, err := h.schemas.List(labels.Everything())
	if err != nil {
		h.logf("compartments: %v", err)
		return
	}
	haveSchema := map[string]bool{}
	for _, s := range schemas {
		haveSchema[s.Name] = true
	}
	slices, err := h.apiservers.List(labels.Everything())
	if err != nil {
		h.logf("compartments: %v", err)
		return
	}
	current := CurrentCompartments(levels)
	desired, err := DesiredCompartments(daemonSets, h.policyFor, current, len(controlplane.ReplicasOf(slices)))
	if err != nil {
		h.logf("compartments: %v", err)
	}
	changes, err := applyCompartments(ctx, h.client, desired, current, haveSchema, levels)
	for _, c := range changes {
		h.logf("%s", c)
	}
	if err != nil {
		h.logf("compartments: %v", err)
	}
	h.metrics.SetCompartments(compartmentSeats(desired))

	lanes, err := h.lanes.List(labels.Everything())
	if err != nil {
		h.logf("lanes: %v", err)
		return
	}
	exists := func(ns, name string) bool {
		_, err := h.daemonSets.DaemonSets(ns).Get(name)
		return err == nil
	}
	removed, err := removeLanes(ctx, h.client, OrphanLanes(lanes, exists, time.Now()))
	for _, r := range removed {
		h.logf("%s", r)
	}
	if err != nil {
		h.logf("lanes: %v", err)
	}
}
