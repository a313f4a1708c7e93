package behavior

import (
	"context"
	"encoding/json"
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
	ag := &agent{client: client, sa: pod.Namespace + "/" + sa, pod: pod.Name, created: &created{names: map[string][]string{}}}
	var actionsDone sync.WaitGroup
	for _, a := range actions {
		actionsDone.Go(func() { e.run(runCtx, ag, a) })
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

// agent is what the actions of one pod share.
type agent struct {
	client  *http.Client
	sa      string // namespace/name
	pod     string
	created *created
}

// created remembers, oldest first, the objects a pod's create actions made, for its deletes. It
// lives as long as the pod's run: objects made before the emulator restarted are not deleted.
type created struct {
	mu    sync.Mutex
	names map[string][]string // resource/namespace → names
}

func createdKey(a Action) string { return a.Resource + "/" + a.Namespace }

func (c *created) add(key, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names[key] = append(c.names[key], name)
}

// oldest removes and returns the oldest object made under key; false when there is none.
func (c *created) oldest(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := c.names[key]
	if len(names) == 0 {
		return "", false
	}
	c.names[key] = names[1:]
	return names[0], true
}

// putBack returns an object whose delete failed, to be deleted first next time.
func (c *created) putBack(key, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names[key] = append([]string{name}, c.names[key]...)
}

// run performs one action until ctx ends.
func (e *Emulator) run(ctx context.Context, ag *agent, a Action) {
	key := StatKey{ServiceAccount: ag.sa, Verb: a.Verb, Resource: a.Resource}
	if a.Verb == VerbWatch {
		e.watchLoop(ctx, ag.client, key, a)
		return
	}
	if a.Once {
		e.burst(ctx, ag, key, a)
		return
	}
	// A random phase spreads agents that started together over the whole interval.
	if !sleep(ctx, time.Duration(rand.Float64()*float64(a.Every))) {
		return
	}
	for {
		start := time.Now()
		e.burst(ctx, ag, key, a)
		// Like a ticker: the next request is due one jittered interval after this one started,
		// so slow responses do not lower the request rate unless they exceed the interval.
		interval := time.Duration(float64(a.Every) * (1 + a.Jitter*(2*rand.Float64()-1)))
		if !sleep(ctx, interval-time.Since(start)) {
			return
		}
	}
}

// burst performs an action's Burst requests one after another.
func (e *Emulator) burst(ctx context.Context, ag *agent, key StatKey, a Action) {
	for range a.Burst {
		if ctx.Err() != nil {
			return
		}
		switch a.Verb {
		case VerbCreate:
			e.create(ctx, ag, key, a)
		case VerbUpdate:
			e.update(ctx, ag, key, a)
		case VerbPatch:
			e.patch(ctx, ag, key, a)
		case VerbDelete:
			e.delete(ctx, ag, key, a)
		default:
			e.read(ctx, ag.client, key, a)
		}
	}
}

// read performs a get, or a list with all its pages.
func (e *Emulator) read(ctx context.Context, client *http.Client, key StatKey, a Action) {
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
		e.stats.Record(key, time.Since(start), n, err)
		if err != nil || meta.Continue == "" {
			return
		}
		continueToken = meta.Continue
	}
}

// write sends one request of a write and records it; it returns the response body, nil when it
// failed, and why.
func (e *Emulator) write(ctx context.Context, ag *agent, key StatKey, a Action, method, contentType string, body []byte) ([]byte, error) {
	path, err := e.resources.path(a, false, "")
	if err != nil {
		log.Printf("behavior: %s: %v", key.ServiceAccount, err)
		return nil, err
	}
	start := time.Now()
	answer, err := send(ctx, ag.client, method, e.base.Host, path, contentType, body)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	e.stats.Record(key, time.Since(start), int64(len(answer)), err)
	if err != nil {
		return nil, err
	}
	return answer, nil
}

// create makes one object from the resource's template and remembers it for the deletes.
func (e *Emulator) create(ctx context.Context, ag *agent, key StatKey, a Action) {
	body, err := template(a.Resource, a.Namespace, ag.pod)
	if err != nil {
		log.Printf("behavior: %s: %v", key.ServiceAccount, err)
		return
	}
	answer, err := e.write(ctx, ag, key, a, http.MethodPost, "application/json", body)
	if err != nil {
		return
	}
	var obj struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(answer, &obj); err != nil || obj.Metadata.Name == "" {
		log.Printf("behavior: %s: create %s: no name in the response: %v", key.ServiceAccount, a.Resource, err)
		return
	}
	ag.created.add(createdKey(a), obj.Metadata.Name)
}

// delete removes the oldest object this pod's creates made; with none left it does nothing.
func (e *Emulator) delete(ctx context.Context, ag *agent, key StatKey, a Action) {
	name, ok := ag.created.oldest(createdKey(a))
	if !ok {
		return
	}
	target := a
	target.Name = name
	_, err := e.write(ctx, ag, key, target, http.MethodDelete, "", nil)
	var status *statusError
	gone := errors.As(err, &status) && status.code == http.StatusNotFound
	// A refused delete (a 429, a timeout) leaves the object to delete first next time.
	if err != nil && !gone && ctx.Err() == nil {
		ag.created.putBack(createdKey(a), name)
	}
}

// patch sets the touched annotation with a merge patch, as kubectl annotate does.
func (e *Emulator) patch(ctx context.Context, ag *agent, key StatKey, a Action) {
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{TouchedAnnotation: touched()}}})
	if err != nil {
		log.Printf("behavior: %s: encode patch: %v", key.ServiceAccount, err)
		return
	}
	_, _ = e.write(ctx, ag, key, a, http.MethodPatch, "application/merge-patch+json", body) // recorded in stats
}

// update reads the object (recorded as a get) and writes it back with the touched annotation
// changed, as a controller does: a conflict with another writer counts as a failed update.
func (e *Emulator) update(ctx context.Context, ag *agent, key StatKey, a Action) {
	get := a
	get.Verb = VerbGet
	current, err := e.write(ctx, ag, StatKey{ServiceAccount: key.ServiceAccount, Verb: VerbGet, Resource: a.Resource}, get, http.MethodGet, "", nil)
	if err != nil {
		return
	}
	var obj map[string]any
	if err := json.Unmarshal(current, &obj); err != nil {
		log.Printf("behavior: %s: update %s/%s: decode: %v", key.ServiceAccount, a.Resource, a.Name, err)
		return
	}
	meta, _ := obj["metadata"].(map[string]any)
	if meta == nil {
		log.Printf("behavior: %s: update %s/%s: object has no metadata", key.ServiceAccount, a.Resource, a.Name)
		return
	}
	annotations, _ := meta["annotations"].(map[string]any)
	if annotations == nil {
		annotations = map[string]any{}
		meta["annotations"] = annotations
	}
	annotations[TouchedAnnotation] = touched()
	body, err := json.Marshal(obj)
	if err != nil {
		log.Printf("behavior: %s: update %s/%s: encode: %v", key.ServiceAccount, a.Resource, a.Name, err)
		return
	}
	_, _ = e.write(ctx, ag, key, a, http.MethodPut, "application/json", body) // recorded in stats
}

func touched() string { return time.Now().UTC().Format(time.RFC3339Nano) }

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
		e.stats.Record(listKey, time.Since(start), n, err)
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
		if errors.As(err, &status) && status.code == http.StatusGone {
			err = nil // an expired resourceVersion ends a watch the way client-go expects
		}
		e.stats.Record(key, time.Since(start), n, err)
		if err != nil {
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
