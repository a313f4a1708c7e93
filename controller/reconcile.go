package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// adoptedRequeue is how soon a freshly adopted rollout takes its first step (its own write
// also wakes it through the informer); waitingRequeue how often a DaemonSet that waits for
// a free rollout slot looks again.
const (
	adoptedRequeue = time.Second
	waitingRequeue = 15 * time.Second
)

// Reconciler decides and acts for one DaemonSet: everything it reads comes from informers;
// everything it writes goes through the Engine, the RolloutStatus and Events.
type Reconciler struct {
	Engine     Engine
	DaemonSets appslisters.DaemonSetLister
	Namespaces corelisters.NamespaceLister
	Policies   func() ([]*v1alpha1.RolloutPolicy, error)
	// MaxRollouts is how many rollouts may be under way at once (0: no limit): each reserves
	// its lane's seats, and the CPU each measures is the servers' (see README). A DaemonSet
	// that waits for a slot looks again after WaitingRequeue (default 15 s).
	MaxRollouts    int
	WaitingRequeue time.Duration
	// Status keeps the DaemonSet's RolloutStatus in step (may be nil).
	Status func(ctx context.Context, ds *appsv1.DaemonSet) error
	// Event records something on the DaemonSet for `kubectl describe` (may be nil).
	Event   func(ds *appsv1.DaemonSet, warning bool, reason, message string)
	Metrics *Metrics

	// adopting serialises adoptions: the count of rollouts under way and the lane sizing (which
	// reads every level's shares) must not race with another adoption. adopted holds the
	// rollouts started that the cache may not show yet, by DaemonSet key.
	adopting sync.Mutex
	adopted  map[string]string
	// waiting holds the DaemonSets told they wait for a slot, by key, with the reason (which
	// names the revision): the Event is written once, not at every look.
	waiting map[string]string
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
		return 0, nil // deleted: its RolloutStatus goes with it; its compartment with the next pass
	}
	if err != nil {
		return 0, fmt.Errorf("DaemonSet %s: %w", key, err)
	}
	after, err := r.act(ctx, ds)
	if r.Status != nil {
		// The view follows the state the informer holds: this step's own write comes back as an
		// event and brings it up to date.
		if serr := r.Status(ctx, ds); serr != nil && err == nil {
			err = serr
		}
	}
	return after, err
}

func (r *Reconciler) act(ctx context.Context, ds *appsv1.DaemonSet) (time.Duration, error) {
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
	case Release:
		if err := r.Engine.Release(ctx, ds.DeepCopy(), reason); err != nil {
			return 0, fmt.Errorf("release %s/%s: %w", ds.Namespace, ds.Name, err)
		}
		return 0, nil
	case Step:
		start := time.Now()
		res, err := r.Engine.Step(ctx, ds.Namespace, ds.Name)
		if errors.Is(err, execute.ErrStateChanged) {
			return adoptedRequeue, nil // a command (abort, pause) moved the rollout on: step again
		}
		r.Metrics.observeStep(res, err, time.Since(start))
		if err != nil {
			return 0, fmt.Errorf("step %s/%s: %w", ds.Namespace, ds.Name, err)
		}
		if res.Superseded {
			return adoptedRequeue, nil // the informer's copy may lag the template that superseded it
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
	r.adopting.Lock()
	defer r.adopting.Unlock()
	key := ds.Namespace + "/" + ds.Name
	if busy, n := r.busy(ds); busy {
		if r.waiting[key] != reason {
			if r.waiting == nil {
				r.waiting = map[string]string{}
			}
			r.waiting[key] = reason
			r.event(ds, false, "Waiting", fmt.Sprintf("%s; %d rollouts are under way (at most %d at once): it starts when one ends", reason, n, r.MaxRollouts))
		}
		if r.WaitingRequeue > 0 {
			return r.WaitingRequeue, nil
		}
		return waitingRequeue, nil
	}
	delete(r.waiting, key)
	st, err := r.Engine.Adopt(ctx, ds.DeepCopy(), settings)
	if errors.Is(err, execute.ErrStateChanged) || errors.Is(err, execute.ErrSuperseded) {
		return adoptedRequeue, nil // the cache was behind the DaemonSet: decide again on what it is now
	}
	if err == nil && st.ID != "" {
		if r.adopted == nil {
			r.adopted = map[string]string{}
		}
		r.adopted[ds.Namespace+"/"+ds.Name] = st.ID
	}
	if err != nil {
		r.event(ds, true, "AdoptFailed", fmt.Sprintf("%s: %v", reason, err))
		return 0, fmt.Errorf("adopt %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	switch {
	case st.ID == "":
		return 0, nil // released: nothing to roll out
	case st.Phase == state.RollingBack:
		return adoptedRequeue, nil // an earlier template's rollout rolls back first (Superseded)
	}
	r.Metrics.adopted(settings.Mode)
	r.event(ds, false, "Adopted", fmt.Sprintf("rollout %s started (%s, mode %s)", st.ID, reason, settings.Mode))
	return adoptedRequeue, nil
}

// busy reports whether MaxRollouts rollouts are under way, from the cache and the adoptions it
// does not show yet. Called with adopting held.
func (r *Reconciler) busy(ds *appsv1.DaemonSet) (bool, int) {
	if r.MaxRollouts <= 0 {
		return false, 0
	}
	if st, found, err := state.Decode(ds.Annotations); err == nil && found && !st.Terminal() {
		return false, 0 // a new template supersedes its rollout: it takes that one's slot
	}
	all, err := r.DaemonSets.List(labels.Everything())
	if err != nil {
		return false, 0
	}
	n, seen, exists := 0, map[string]bool{}, map[string]bool{}
	for _, d := range all {
		key := d.Namespace + "/" + d.Name
		exists[key] = true
		st, found, err := state.Decode(d.Annotations)
		if err != nil || !found {
			continue
		}
		if id, ok := r.adopted[key]; ok && id == st.ID {
			delete(r.adopted, key) // the cache shows it now
		}
		if !st.Terminal() && (st.Held || st.Observing()) {
			n++
			seen[key] = true
		}
	}
	for key := range r.adopted {
		switch {
		case !exists[key]:
			delete(r.adopted, key) // deleted before the cache showed its rollout
		case !seen[key]:
			n++
		}
	}
	return n >= r.MaxRollouts, n
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
