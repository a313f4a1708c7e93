package controller

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/controller/hold"
)

// adoptedRequeue is how soon a freshly adopted rollout takes its first step (its own write
// also wakes it through the informer).
const adoptedRequeue = time.Second

// Reconciler decides and acts for one DaemonSet: everything it reads comes from informers;
// everything it writes goes through the Engine, MarkAdopted and Events.
type Reconciler struct {
	Engine     Engine
	DaemonSets appslisters.DaemonSetLister
	Namespaces corelisters.NamespaceLister
	Policies   func() ([]*v1alpha1.RolloutPolicy, error)
	// MarkAdopted records on the DaemonSet the revision a rollout was started for.
	MarkAdopted func(ctx context.Context, ds *appsv1.DaemonSet, revision string) error
	// Event records something on the DaemonSet for `kubectl describe` (may be nil).
	Event   func(ds *appsv1.DaemonSet, warning bool, reason, message string)
	Metrics *Metrics
}

// Reconcile handles the DaemonSet "namespace/name" and says when to come back (0: when it
// changes).
func (r *Reconciler) Reconcile(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, fmt.Errorf("key %q: %w", key, err)
	}
	ds, err := r.DaemonSets.DaemonSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil // deleted: its compartment goes with the next compartment pass
	}
	if err != nil {
		return 0, fmt.Errorf("DaemonSet %s: %w", key, err)
	}
	policy, err := r.policyFor(ds)
	if err != nil {
		return 0, err
	}
	action, reason, err := Decide(ds, policy)
	if err != nil {
		return 0, err
	}
	if action != None && r.Engine == nil {
		r.event(ds, false, "Waiting", reason+"; this controller runs without a rollout engine, so the DaemonSet stays held")
		return 0, nil
	}
	switch action {
	case Adopt:
		return r.adopt(ctx, ds, policy, reason)
	case Step:
		start := time.Now()
		res, err := r.Engine.Step(ctx, namespace, name)
		r.Metrics.observeStep(res, err, time.Since(start))
		if err != nil {
			return 0, fmt.Errorf("step %s: %w", key, err)
		}
		return res.RequeueAfter, nil
	}
	return 0, nil
}

func (r *Reconciler) adopt(ctx context.Context, ds *appsv1.DaemonSet, policy *v1alpha1.RolloutPolicy, reason string) (time.Duration, error) {
	settings := v1alpha1.Settings{Mode: v1alpha1.Guard}
	if policy != nil {
		var err error
		if settings, err = policy.Settings(); err != nil {
			return 0, err
		}
	}
	revision, err := hold.Revision(ds.Spec.Template)
	if err != nil {
		return 0, err
	}
	st, err := r.Engine.Adopt(ctx, ds.DeepCopy(), settings)
	if err != nil {
		r.event(ds, true, "AdoptFailed", fmt.Sprintf("%s: %v", reason, err))
		return 0, fmt.Errorf("adopt %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	if err := r.MarkAdopted(ctx, ds, revision); err != nil {
		return 0, fmt.Errorf("adopt %s/%s: record revision %s: %w", ds.Namespace, ds.Name, revision, err)
	}
	r.Metrics.adopted(settings.Mode)
	r.event(ds, false, "Adopted", fmt.Sprintf("rollout %s started (%s, mode %s)", st.ID, reason, settings.Mode))
	return adoptedRequeue, nil
}

func (r *Reconciler) policyFor(ds *appsv1.DaemonSet) (*v1alpha1.RolloutPolicy, error) {
	policies, err := r.Policies()
	if err != nil {
		return nil, err
	}
	var nsLabels map[string]string
	ns, err := r.Namespaces.Get(ds.Namespace)
	switch {
	case err == nil:
		nsLabels = ns.Labels
	case apierrors.IsNotFound(err):
		nsLabels = map[string]string{corev1.LabelMetadataName: ds.Namespace}
	default:
		return nil, fmt.Errorf("namespace %s: %w", ds.Namespace, err)
	}
	return v1alpha1.Effective(policies, nsLabels, ds)
}

func (r *Reconciler) event(ds *appsv1.DaemonSet, warning bool, reason, message string) {
	if r.Event != nil {
		r.Event(ds, warning, reason, message)
	}
}
