package behavior

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Emulator runs the behaviours of Running pods. It is driven by a pod informer.
type Emulator struct {
	base      *rest.Config
	events    kubernetes.Interface
	resources Resources
	stats     *Stats

	// connectionPerPod gives each pod a connection of its own (ConnectionPerPod).
	connectionPerPod bool

	mu       sync.Mutex
	runs     map[types.UID]*podRun
	rejected map[types.UID]string // pods whose annotation was reported invalid, with that annotation
	clients  map[string]*http.Client
}

type podRun struct {
	annotation string
	node       string
	cancel     context.CancelFunc
}

// NewEmulator prepares an emulator that impersonates pods' service accounts through base, an
// identity allowed to impersonate (the lab's admin).
func NewEmulator(base *rest.Config, client kubernetes.Interface, stats *Stats) (*Emulator, error) {
	resources, err := DiscoverResources(client.Discovery())
	if err != nil {
		return nil, err
	}
	return &Emulator{
		base: base, events: client, resources: resources, stats: stats,
		runs: map[types.UID]*podRun{}, rejected: map[types.UID]string{}, clients: map[string]*http.Client{},
	}, nil
}

// ConnectionPerPod gives every emulated pod its own connection to the API, as real pods have,
// instead of sharing the emulator's (client-go multiplexes every pod's requests over one HTTP/2
// connection). Behind a load balancer that balances connections, it is what spreads a fleet's
// load over the apiserver replicas. Call it before Attach.
func (e *Emulator) ConnectionPerPod() { e.connectionPerPod = true }

// Attach makes the emulator follow pods seen by informer until ctx ends.
func (e *Emulator) Attach(ctx context.Context, informer cache.SharedIndexInformer) error {
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { e.reconcile(ctx, obj) },
		UpdateFunc: func(_, obj any) { e.reconcile(ctx, obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				e.stop(pod.UID, true)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watch pods for behaviours: %w", err)
	}
	go func() {
		<-ctx.Done()
		e.mu.Lock()
		defer e.mu.Unlock()
		for uid, run := range e.runs {
			run.cancel()
			delete(e.runs, uid)
		}
	}()
	return nil
}

func (e *Emulator) reconcile(ctx context.Context, obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	annotation, annotated := pod.Annotations[Annotation]
	active := annotated && pod.Status.Phase == corev1.PodRunning && pod.Spec.NodeName != "" && pod.DeletionTimestamp == nil

	e.mu.Lock()
	run := e.runs[pod.UID]
	if run != nil && active && run.annotation == annotation && run.node == pod.Spec.NodeName {
		e.mu.Unlock()
		return
	}
	if !active || e.rejected[pod.UID] == annotation {
		e.mu.Unlock()
		if run != nil {
			e.stop(pod.UID, false)
		}
		return
	}
	e.mu.Unlock()
	if run != nil {
		e.stop(pod.UID, false)
	}

	actions, err := e.prepare(pod, annotation)
	if err != nil {
		e.reject(ctx, pod, annotation, err)
		return
	}
	sa := serviceAccount(pod)
	var client *http.Client
	if e.connectionPerPod {
		client, err = e.newClient(pod.Namespace, sa)
	} else {
		client, err = e.clientFor(pod.Namespace, sa)
	}
	if err != nil {
		e.reject(ctx, pod, annotation, err)
		return
	}
	runCtx, cancel := context.WithCancel(ctx)
	e.mu.Lock()
	e.runs[pod.UID] = &podRun{annotation: annotation, node: pod.Spec.NodeName, cancel: cancel}
	e.mu.Unlock()
	var actionsDone sync.WaitGroup
	for _, a := range actions {
		actionsDone.Go(func() { e.run(runCtx, client, pod.Namespace+"/"+sa, a) })
	}
	if e.connectionPerPod {
		// The pod's connection ends with the pod, as a real pod's does.
		go func() {
			actionsDone.Wait()
			utilnet.CloseIdleConnectionsFor(client.Transport)
		}()
	}
}

// prepare parses and expands a pod's behaviour and checks every action against the API.
func (e *Emulator) prepare(pod *corev1.Pod, annotation string) ([]Action, error) {
	actions, err := Parse(annotation)
	if err != nil {
		return nil, err
	}
	actions = Expand(actions, Vars{NodeName: pod.Spec.NodeName, PodName: pod.Name, PodNamespace: pod.Namespace})
	for i, a := range actions {
		if _, err := e.resources.path(a, false, ""); err != nil {
			return nil, fmt.Errorf("action %d: %w", i+1, err)
		}
	}
	return actions, nil
}

// reject reports an invalid behaviour once per pod and annotation: a log line and an Event.
func (e *Emulator) reject(ctx context.Context, pod *corev1.Pod, annotation string, cause error) {
	e.mu.Lock()
	e.rejected[pod.UID] = annotation
	e.mu.Unlock()
	log.Printf("behavior: pod %s/%s: invalid %s annotation, no traffic: %v", pod.Namespace, pod.Name, Annotation, cause)
	now := metav1.Now()
	event := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: pod.Name + ".", Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Reason:         "InvalidBehavior",
		Message:        fmt.Sprintf("%s: %v; this pod gets no emulated traffic", Annotation, cause),
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "bulkhead-lab"},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
	}
	if _, err := e.events.CoreV1().Events(pod.Namespace).Create(ctx, event, metav1.CreateOptions{}); err != nil {
		log.Printf("behavior: pod %s/%s: record event: %v", pod.Namespace, pod.Name, err)
	}
}

func (e *Emulator) stop(uid types.UID, forget bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if run := e.runs[uid]; run != nil {
		run.cancel()
		delete(e.runs, uid)
	}
	if forget {
		delete(e.rejected, uid)
	}
}

// clientFor returns an HTTP client that impersonates the service account. Impersonation wraps
// the shared TLS transport, so all agents reuse the emulator's connections.
func (e *Emulator) clientFor(namespace, sa string) (*http.Client, error) {
	user := "system:serviceaccount:" + namespace + ":" + sa
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.clients[user]; c != nil {
		return c, nil
	}
	c, err := rest.HTTPClientFor(impersonating(e.base, namespace, sa))
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", user, err)
	}
	e.clients[user] = c
	return c, nil
}

// newClient returns an HTTP client that impersonates the service account over connections of
// its own.
func (e *Emulator) newClient(namespace, sa string) (*http.Client, error) {
	cfg := impersonating(e.base, namespace, sa)
	// client-go shares one transport between configs of equal TLS settings, unless the config
	// has a Proxy function: this one keeps the default proxy behaviour and gets its own.
	cfg.Proxy = http.ProxyFromEnvironment
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("client for %s/%s: %w", namespace, sa, err)
	}
	return c, nil
}

func impersonating(base *rest.Config, namespace, sa string) *rest.Config {
	cfg := rest.CopyConfig(base)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + namespace + ":" + sa,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
	return cfg
}

func serviceAccount(pod *corev1.Pod) string {
	if pod.Spec.ServiceAccountName != "" {
		return pod.Spec.ServiceAccountName
	}
	return "default"
}

// run performs one action until ctx ends.
func (e *Emulator) run(ctx context.Context, client *http.Client, sa string, a Action) {
	key := StatKey{ServiceAccount: sa, Verb: a.Verb, Resource: a.Resource}
	if a.Verb == VerbWatch {
		e.watchLoop(ctx, client, key, a)
		return
	}
	if a.Once {
		e.once(ctx, client, key, a)
		return
	}
	// A random phase spreads agents that started together over the whole interval.
	if !sleep(ctx, time.Duration(rand.Float64()*float64(a.Every))) {
		return
	}
	for {
		start := time.Now()
		e.once(ctx, client, key, a)
		// Like a ticker: the next request is due one jittered interval after this one started,
		// so slow responses do not lower the request rate unless they exceed the interval.
		interval := time.Duration(float64(a.Every) * (1 + a.Jitter*(2*rand.Float64()-1)))
		if !sleep(ctx, interval-time.Since(start)) {
			return
		}
	}
}

// once performs a get, or a list with all its pages.
func (e *Emulator) once(ctx context.Context, client *http.Client, key StatKey, a Action) {
	continueToken := ""
	for {
		path, err := e.resources.path(a, false, continueToken)
		if err != nil {
			log.Printf("behavior: %s: %v", key.ServiceAccount, err)
			return
		}
		start := time.Now()
		meta, n, err := do(ctx, client, e.base.Host, path, a.Verb == VerbList)
		if ctx.Err() != nil {
			return
		}
		e.stats.Record(key, time.Since(start), n, err != nil)
		if err != nil || meta.Continue == "" {
			return
		}
		continueToken = meta.Continue
	}
}

// watchLoop lists then watches, like an informer; when the watch ends it lists and watches again.
func (e *Emulator) watchLoop(ctx context.Context, client *http.Client, key StatKey, a Action) {
	list := a
	list.Verb = VerbList
	if !list.HasRV {
		list.ResourceVersion, list.HasRV = "0", true // a reflector's first list reads the watch cache
	}
	listKey := StatKey{ServiceAccount: key.ServiceAccount, Verb: VerbList, Resource: a.Resource}
	for ctx.Err() == nil {
		listPath, err := e.resources.path(list, false, "")
		if err != nil {
			return
		}
		start := time.Now()
		meta, n, err := do(ctx, client, e.base.Host, listPath, true)
		if ctx.Err() != nil {
			return
		}
		e.stats.Record(listKey, time.Since(start), n, err != nil)
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		w := a
		w.ResourceVersion, w.HasRV = meta.ResourceVersion, true
		watchPath, _ := e.resources.path(w, true, "")
		// Like client-go, a watch lasts a random 5–10 minutes before the client renews it.
		watchPath += fmt.Sprintf("&timeoutSeconds=%d", 300+rand.IntN(300))
		start = time.Now()
		_, n, err = do(ctx, client, e.base.Host, watchPath, false)
		if ctx.Err() != nil {
			return
		}
		var status *statusError
		failed := err != nil && !(errors.As(err, &status) && status.code == http.StatusGone)
		e.stats.Record(key, time.Since(start), n, failed)
		if failed {
			sleep(ctx, time.Second)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
