package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
)

// Config is what the controller process is started with.
type Config struct {
	REST *rest.Config
	// Engine drives rollouts; nil runs the controller without one: held DaemonSets stay held
	// (each gets a Waiting event), compartments, policy status and metrics work.
	Engine Engine
	// MetricsAddr serves /metrics; HealthAddr serves /healthz and /readyz.
	MetricsAddr, HealthAddr string
	// LeaderElect makes replicas share the work through a Lease: one drives, the others
	// keep warm caches and take over when its Lease expires.
	LeaderElect                               bool
	LeaseNamespace, LeaseName, Identity       string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Workers is how many rollouts may take a step at the same moment; MaxRollouts how many
	// may be under way at once (0: no limit).
	Workers, MaxRollouts int
	// Housekeeping is how often policy status and compartments are recomputed from the
	// caches (writes happen only on change).
	Housekeeping time.Duration
	Log          func(string)
}

// Run runs the controller until ctx ends or, with leader election, until it loses the Lease
// (it returns an error then: a replica that lost the Lease must not keep acting).
func Run(ctx context.Context, c Config) error {
	client, err := kubernetes.NewForConfig(c.REST)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(c.REST)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	logf := func(format string, args ...any) {
		if c.Log != nil {
			c.Log(fmt.Sprintf(format, args...))
		}
	}

	// Informers only: every read below comes from their caches, no periodic LIST.
	factory := informers.NewSharedInformerFactory(client, 0)
	dsInformer := factory.Apps().V1().DaemonSets()
	nsInformer := factory.Core().V1().Namespaces()
	plInformer := factory.Flowcontrol().V1().PriorityLevelConfigurations()
	compartmentSchemas := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = apf.ManagedSelector(apf.PurposeCompartment)
	})).Flowcontrol().V1().FlowSchemas()
	laneSchemas := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = apf.ManagedSelector(apf.PurposeRolloutLane)
	})).Flowcontrol().V1().FlowSchemas()
	apiservers := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(metav1.NamespaceDefault),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = discoveryv1.LabelServiceName + "=kubernetes" })).
		Discovery().V1().EndpointSlices()
	dynFactory := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	policyInformer := dynFactory.ForResource(v1alpha1.Resource)
	statusInformer := dynFactory.ForResource(v1alpha1.RolloutStatusResource)
	policies := func() ([]*v1alpha1.RolloutPolicy, error) { return listPolicies(policyInformer.Lister()) }

	var queue *Queue
	metrics := NewMetrics(dsInformer.Lister(), func() int {
		if queue == nil {
			return 0
		}
		return queue.Len()
	})
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "bulkhead-controller"})

	views := &statuses{dyn: dyn, lister: statusInformer.Lister()}
	rec := &Reconciler{
		Engine: c.Engine, DaemonSets: dsInformer.Lister(), Namespaces: nsInformer.Lister(), Policies: policies,
		MaxRollouts: c.MaxRollouts, Status: views.sync,
		Event: func(ds *appsv1.DaemonSet, warning bool, reason, message string) {
			typ := corev1.EventTypeNormal
			if warning {
				typ = corev1.EventTypeWarning
			}
			recorder.Event(ds, typ, reason, message)
		},
		Metrics: metrics,
	}
	queue = NewQueue(rec.Reconcile, time.Second, 5*time.Minute, func(key string, err error) { logf("%s: %v", key, err) })
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	enqueueAll := func(any) {
		list, _ := dsInformer.Lister().List(labels.Everything())
		for _, ds := range list {
			enqueue(ds)
		}
	}
	if _, err := dsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, n any) { enqueue(n) }, DeleteFunc: enqueue}); err != nil {
		return err
	}
	if _, err := policyInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueAll, UpdateFunc: func(_, n any) { enqueueAll(n) }, DeleteFunc: enqueueAll}); err != nil {
		return err
	}

	var synced atomic.Bool
	health := http.NewServeMux()
	watchdog := leaderelection.NewLeaderHealthzAdaptor(20 * time.Second)
	health.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := watchdog.Check(r); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	health.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !synced.Load() {
			http.Error(w, "informers not synced", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	metricsMux := http.NewServeMux()
	metricsMux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	serve := func(what, addr string, h http.Handler) (func(), error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s on %s: %w", what, addr, err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(l) }()
		logf("%s listening on http://%s", what, l.Addr())
		return func() { _ = srv.Close() }, nil
	}
	stopMetrics, err := serve("metrics", c.MetricsAddr, metricsMux)
	if err != nil {
		return err
	}
	defer stopMetrics()
	stopHealth, err := serve("health", c.HealthAddr, health)
	if err != nil {
		return err
	}
	defer stopHealth()

	// The factory's informers are made before Start (it starts only those asked for); the
	// filtered ones have factories of their own and run by themselves.
	shared := []cache.SharedIndexInformer{dsInformer.Informer(), nsInformer.Informer(), plInformer.Informer()}
	own := []cache.SharedIndexInformer{compartmentSchemas.Informer(), laneSchemas.Informer(), apiservers.Informer(), policyInformer.Informer(), statusInformer.Informer()}
	factory.Start(ctx.Done())
	var syncs []cache.InformerSynced
	for _, inf := range own {
		go inf.Run(ctx.Done())
	}
	for _, inf := range append(shared, own...) {
		syncs = append(syncs, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), syncs...) {
		return fmt.Errorf("informers did not sync: %w", context.Cause(ctx))
	}
	synced.Store(true)
	logf("caches synced")

	housekeeping := &housekeeper{client: client, dyn: dyn, daemonSets: dsInformer.Lister(), levels: plInformer.Lister(),
		schemas: compartmentSchemas.Lister(), lanes: laneSchemas.Lister(), apiservers: apiservers.Lister(), policies: policies, policyFor: rec.policyFor,
		metrics: metrics, logf: logf}
	lead := func(ctx context.Context) {
		metrics.SetLeader(true)
		defer metrics.SetLeader(false)
		logf("leading: driving rollouts with %d workers", max(1, c.Workers))
		enqueueAll(nil)
		go housekeeping.run(ctx, c.Housekeeping)
		queue.Run(ctx, c.Workers)
	}
	if !c.LeaderElect {
		lead(ctx)
		return nil
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, c.LeaseNamespace, c.LeaseName, client.CoreV1(), client.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: c.Identity, EventRecorder: recorder})
	if err != nil {
		return fmt.Errorf("lease %s/%s: %w", c.LeaseNamespace, c.LeaseName, err)
	}
	lost := make(chan struct{})
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, LeaseDuration: c.LeaseDuration, RenewDeadline: c.RenewDeadline, RetryPeriod: c.RetryPeriod,
		ReleaseOnCancel: true, Name: c.LeaseName, WatchDog: watchdog,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: lead,
			OnStoppedLeading: func() { close(lost) },
			OnNewLeader: func(identity string) {
				if identity != c.Identity {
					logf("standing by: %s leads", identity)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	elector.Run(ctx) // returns when ctx ends or the Lease is lost
	select {
	case <-lost:
		if ctx.Err() == nil {
			return errors.New("lost the leader Lease; exiting so that only one replica acts")
		}
	default:
	}
	return nil
}

func listPolicies(lister cache.GenericLister) ([]*v1alpha1.RolloutPolicy, error) {
	objs, err := lister.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	out := make([]*v1alpha1.RolloutPolicy, 0, len(objs))
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		p := &v1alpha1.RolloutPolicy{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, p); err != nil {
			return nil, fmt.Errorf("RolloutPolicy %s: %w", u.GetName(), err)
		}
		out = append(out, p)
	}
	return out, nil
}
