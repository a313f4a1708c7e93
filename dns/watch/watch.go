package watch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/bulkhead-dev/bulkhead/dns/snapshot"
)

// Config configures Run.
type Config struct {
	Client kubernetes.Interface
	// Debounce is the quiet time after an event before the view is read; default 50 ms.
	Debounce time.Duration
	// MaxDelay bounds the wait after the first event of a burst; default 250 ms.
	MaxDelay time.Duration
	// OnView receives every settled view, the first one once both informers have synced.
	OnView func(*snapshot.State)
	// OnConnection reports every watch failure (false, with its error) and every sign of
	// health (true), as often as they happen: Connection turns them into changes worth a log
	// line.
	OnConnection func(connected bool, err error)
}

// Run watches until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Client == nil || cfg.OnView == nil {
		return errors.New("watch: client and OnView are required")
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = 50 * time.Millisecond
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = 250 * time.Millisecond
	}
	connection := func(connected bool, err error) {
		if cfg.OnConnection != nil {
			cfg.OnConnection(connected, err)
		}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithTransform(Trim))
	services := factory.Core().V1().Services()
	endpointSlices := factory.Discovery().V1().EndpointSlices()
	dirty := make(chan struct{}, 1)
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { mark(dirty) },
		UpdateFunc: func(any, any) { mark(dirty) },
		DeleteFunc: func(any) { mark(dirty) },
	}
	for _, inf := range []cache.SharedIndexInformer{services.Informer(), endpointSlices.Informer()} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return fmt.Errorf("watch: add handler: %w", err)
		}
		if err := inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, _ *cache.Reflector, err error) {
			connection(false, err)
		}); err != nil {
			return fmt.Errorf("watch: set error handler: %w", err)
		}
	}
	factory.StartWithContext(ctx)
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), services.Informer().HasSynced, endpointSlices.Informer().HasSynced) {
		return nil // ctx ended before the first sync
	}
	connection(true, nil)
	emit := func() error {
		svcs, err := services.Lister().List(labels.Everything())
		if err != nil {
			return fmt.Errorf("watch: list cached services: %w", err)
		}
		eps, err := endpointSlices.Lister().List(labels.Everything())
		if err != nil {
			return fmt.Errorf("watch: list cached endpointslices: %w", err)
		}
		cfg.OnView(View(time.Now(), svcs, eps))
		return nil
	}
	// Events from the initial list are already in the view emitted here.
	select {
	case <-dirty:
	default:
	}
	start := time.Now()
	if err := emit(); err != nil {
		return err
	}
	took, done := time.Since(start), time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-dirty:
		}
		connection(true, nil)
		if !settle(ctx, dirty, cfg.Debounce, cfg.MaxDelay) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(done.Add(Cooldown(took)))):
		}
		start = time.Now()
		if err := emit(); err != nil {
			return err
		}
		took, done = time.Since(start), time.Now()
	}
}

// Cooldown is the least time between the end of one view's processing and the next, given how
// long the last one took: twice as long, so that rebuilding under constant churn costs at most a
// third of a core (a 10k-Service index takes about 0.85 s to build). Small clusters, whose views
// take milliseconds, see no delay beyond the debounce.
func Cooldown(lastTook time.Duration) time.Duration {
	return min(2*lastTook, 10*time.Second)
}

func mark(dirty chan struct{}) {
	select {
	case dirty <- struct{}{}:
	default:
	}
}

// settle waits until no event came for quiet, or maxDelay passed; false if ctx ended.
func settle(ctx context.Context, dirty chan struct{}, quiet, maxDelay time.Duration) bool {
	deadline := time.NewTimer(maxDelay)
	defer deadline.Stop()
	for {
		q := time.NewTimer(quiet)
		select {
		case <-ctx.Done():
			q.Stop()
			return false
		case <-deadline.C:
			q.Stop()
			return true
		case <-q.C:
			return true
		case <-dirty:
			q.Stop()
		}
	}
}

// View is a deterministic (sorted) State of the given objects.
func View(syncedAt time.Time, services []*corev1.Service, endpointSlices []*discoveryv1.EndpointSlice) *snapshot.State {
	st := &snapshot.State{SyncedAt: syncedAt.UTC(), Services: slices.Clone(services), EndpointSlices: slices.Clone(endpointSlices)}
	slices.SortFunc(st.Services, func(a, b *corev1.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortFunc(st.EndpointSlices, func(a, b *discoveryv1.EndpointSlice) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return st
}

// Trim keeps only what DNS needs of Services and EndpointSlices, which is what the informer
// caches and the snapshot hold. Other objects pass unchanged.
func Trim(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Service:
		out := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name, ResourceVersion: o.ResourceVersion, UID: o.UID},
			Spec: corev1.ServiceSpec{
				Type:                     o.Spec.Type,
				ClusterIP:                o.Spec.ClusterIP,
				ClusterIPs:               o.Spec.ClusterIPs,
				ExternalName:             o.Spec.ExternalName,
				PublishNotReadyAddresses: o.Spec.PublishNotReadyAddresses,
			},
		}
		for _, p := range o.Spec.Ports {
			out.Spec.Ports = append(out.Spec.Ports, corev1.ServicePort{Name: p.Name, Protocol: p.Protocol, Port: p.Port})
		}
		return out, nil
	case *discoveryv1.EndpointSlice:
		out := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name, ResourceVersion: o.ResourceVersion, UID: o.UID},
			AddressType: o.AddressType,
			Ports:       o.Ports,
		}
		if name, ok := o.Labels[discoveryv1.LabelServiceName]; ok {
			out.Labels = map[string]string{discoveryv1.LabelServiceName: name}
		}
		for _, ep := range o.Endpoints {
			out.Endpoints = append(out.Endpoints, discoveryv1.Endpoint{Addresses: ep.Addresses, Conditions: ep.Conditions, Hostname: ep.Hostname})
		}
		return out, nil
	}
	return obj, nil
}
