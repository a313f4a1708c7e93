package controlplane

import (
	"context"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listers "k8s.io/client-go/listers/coordination/v1"
	"k8s.io/client-go/tools/cache"
)

// Every kube-apiserver keeps an identity Lease in kube-system (KEP-1965, on by default since
// v1.26), labelled apiserver.kubernetes.io/identity=kube-apiserver and renewed every 10 s. The
// live ones count the API server processes, whatever address they hide behind: the number of
// replicas a scrape through a balanced address should find.
const (
	identityLeaseSelector = "apiserver.kubernetes.io/identity=kube-apiserver"
	// identityLeaseFresh is how recently a Lease must have been renewed to count as a live
	// process: a few of kube-apiserver's 10-s renewals, well inside its 1-hour lease duration,
	// after which a dead replica's Lease is only garbage-collected.
	identityLeaseFresh = time.Minute
)

// identityLeases counts the live kube-apiserver identity Leases, kept current by one watch.
type identityLeases struct {
	client kubernetes.Interface
	leases listers.LeaseLister
	synced cache.InformerSynced

	mu  sync.Mutex
	err error
}

// run starts the watch until ctx ends; Scraper.Start calls it once.
func (l *identityLeases) run(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(l.client, 0,
		informers.WithNamespace(metav1.NamespaceSystem),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = identityLeaseSelector }))
	informer := factory.Coordination().V1().Leases()
	l.leases, l.synced = informer.Lister(), informer.Informer().HasSynced
	_ = informer.Informer().SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.err = err
	})
	factory.Start(ctx.Done())
}

// settled says whether the Leases were read, or their watch failed.
func (l *identityLeases) settled() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err != nil || (l.synced != nil && l.synced())
}

// count is the number of live API server processes and what it rests on; 0 when unknown.
func (l *identityLeases) count(now time.Time) (int, string) {
	if l == nil {
		return 0, "unknown: discovery is off"
	}
	if l.leases == nil || !l.synced() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.err != nil {
			return 0, fmt.Sprintf("unknown: the kube-system identity Leases cannot be read (%v)", l.err)
		}
		return 0, "unknown: the kube-system identity Leases are not read yet"
	}
	found, err := l.leases.Leases(metav1.NamespaceSystem).List(labels.Everything())
	if err != nil {
		return 0, fmt.Sprintf("unknown: %v", err)
	}
	n := LiveIdentityLeases(found, now)
	if n == 0 {
		return 0, "unknown: no kube-apiserver identity Lease renewed in the last minute"
	}
	return n, "kube-apiserver identity Leases"
}

// LiveIdentityLeases counts the Leases renewed within the last minute before now.
func LiveIdentityLeases(leases []*coordinationv1.Lease, now time.Time) int {
	n := 0
	for _, l := range leases {
		if r := l.Spec.RenewTime; r != nil && now.Sub(r.Time) < identityLeaseFresh {
			n++
		}
	}
	return n
}
