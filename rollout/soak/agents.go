package soak

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Pods keeps a cache of one DaemonSet's pods: one LIST and a watch, scoped to its namespace and
// selector, for as long as its rollout soaks.
type Pods struct {
	lister cache.GenericLister
	stop   func()
}

// WatchPods starts the cache and waits for it to sync.
func WatchPods(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet) (*Pods, error) {
	selector, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("DaemonSet %s/%s selector: %w", ds.Namespace, ds.Name, err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ds.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector.String() }))
	informer, err := factory.ForResource(corev1.SchemeGroupVersion.WithResource("pods"))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("pod informer: %w", err)
	}
	factory.Start(ctx.Done())
	syncCtx, syncCancel := context.WithTimeout(ctx, time.Minute)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), informer.Informer().HasSynced) {
		cancel()
		factory.Shutdown()
		return nil, fmt.Errorf("pods of %s/%s: cache did not sync", ds.Namespace, ds.Name)
	}
	return &Pods{lister: informer.Lister(), stop: func() { cancel(); factory.Shutdown() }}, nil
}

// Stop ends the watch.
func (p *Pods) Stop() { p.stop() }

// Agents counts the wave's agents from the cache: new-revision pods (Ready, and started in this
// wave when the soak is fresh) and the old ones.
func (p *Pods) Agents(current string, st state.State) (check.Agents, error) {
	objs, err := p.lister.List(labels.Everything())
	if err != nil {
		return check.Agents{}, fmt.Errorf("pods from cache: %w", err)
	}
	a := check.Agents{Desired: st.Done}
	if st.Phase == state.Baseline {
		a.Desired = 0
	}
	waveStart := st.WaveStarted.Truncate(time.Second) // creation timestamps have 1 s resolution
	for _, o := range objs {
		pod := o.(*corev1.Pod)
		if pod.DeletionTimestamp != nil {
			continue
		}
		if pod.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] != current || st.Phase == state.Baseline {
			a.Old++
			continue
		}
		if execute.PodReady(pod) {
			a.Ready++
		}
		if st.FreshSoak() && !pod.CreationTimestamp.Time.Before(waveStart) {
			a.Started++
		}
	}
	a.Ready = min(a.Ready, a.Desired)
	a.Started = min(a.Started, a.Desired)
	return a, nil
}
