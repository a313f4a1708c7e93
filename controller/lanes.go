package controller

import (
	"context"
	"errors"
	"strings"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// orphanGrace is how old a rollout lane must be before its DaemonSet's absence makes it an
// orphan: `bulkhead rollout apply` creates the lane a moment before the DaemonSet.
const orphanGrace = 5 * time.Minute

// OrphanLanes are the rollout lanes whose DaemonSet is gone (deleted mid-rollout, by a GitOps
// tool or a person): nothing would ever remove them, and a lane reserves seats. exists says
// whether a DaemonSet is in the cache. Pure.
func OrphanLanes(schemas []*flowcontrolv1.FlowSchema, exists func(namespace, name string) bool, now time.Time) []state.Lane {
	var out []state.Lane
	for _, fs := range schemas {
		owner := fs.Annotations[apf.OwnerAnnotation]
		ns, name, ok := strings.Cut(strings.TrimPrefix(owner, "daemonset/"), "/")
		if fs.Labels[apf.PurposeLabel] != string(apf.PurposeRolloutLane) || !strings.HasPrefix(owner, "daemonset/") || !ok ||
			now.Sub(fs.CreationTimestamp.Time) < orphanGrace || exists(ns, name) {
			continue
		}
		level := fs.Spec.PriorityLevelConfiguration.Name
		out = append(out, state.Lane{FlowSchema: fs.Name, PriorityLevel: level, Shared: level != fs.Name})
	}
	return out
}

// removeLanes deletes orphaned lanes (a shared level, observe's, is left alone).
func removeLanes(ctx context.Context, client kubernetes.Interface, lanes []state.Lane) (removed []string, err error) {
	var errs []error
	for _, l := range lanes {
		if err := execute.DeleteLane(ctx, client, l); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "lane "+l.FlowSchema+" of a deleted DaemonSet removed")
	}
	return removed, errors.Join(errs...)
}
