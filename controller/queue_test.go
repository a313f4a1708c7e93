package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/controller/hold"
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// fakeEngine plays the rollout core: Adopt writes a state, each Step advances it one
// action and asks to come back after a delay, until the rollout completes after `steps`.
// It writes to the informer store the reconciler reads, as the API server and the informer
// would, and records concurrency.
type fakeEngine struct {
	store cache.Indexer
	steps int
	every time.Duration
	fail  map[string]int // failures to return before succeeding, by key

	mu                  sync.Mutex
	adopts, stepsTaken  map[string]int
	inFlight, maxFlight int
	keyInFlight         map[string]bool
	maxUnderWay         int
	overlapped          bool
	adoptedWith         map[string]v1alpha1.Settings
}

func newFakeEngine(store cache.Indexer, steps int, every time.Duration) *fakeEngine {
	return &fakeEngine{store: store, steps: steps, every: every, fail: map[string]int{},
		adopts: map[string]int{}, stepsTaken: map[string]int{}, keyInFlight: map[string]bool{}, adoptedWith: map[string]v1alpha1.Settings{}}
}

func (e *fakeEngine) enter(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.keyInFlight[key] {
		e.overlapped = true
	}
	e.keyInFlight[key] = true
	e.inFlight++
	e.maxFlight = max(e.maxFlight, e.inFlight)
}

func (e *fakeEngine) leave(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.keyInFlight[key] = false
	e.inFlight--
}

func (e *fakeEngine) write(ds *appsv1.DaemonSet, st state.State) {
	ann, err := state.Encode(st)
	if err != nil {
		panic(err)
	}
	ds = ds.DeepCopy()
	for k, v := range ann {
		ds.Annotations[k] = v
	}
	if err := e.store.Update(ds); err != nil {
		panic(err)
	}
}

func (e *fakeEngine) Adopt(_ context.Context, ds *appsv1.DaemonSet, s v1alpha1.Settings) (state.State, error) {
	key := ds.Namespace + "/" + ds.Name
	e.enter(key)
	defer e.leave(key)
	time.Sleep(time.Millisecond)
	rev, err := hold.Revision(ds.Spec.Template)
	if err != nil {
		return state.State{}, err
	}
	st, err := state.New(state.Start{ID: "r-" + ds.Name, Kind: state.Create, WavesSpec: "100%", Targets: []int{1}, Eligible: 1,
		Soak: time.Minute, Budget: check.DefaultBudget, Limits: check.DefaultBudget.Limits(check.Capacity{Seats: 60}), Lane: state.Lane{FlowSchema: "l", PriorityLevel: "l"},
		NodeLabel: "gate", Held: true, Revision: rev}, time.Now())
	if err != nil {
		return state.State{}, err
	}
	e.write(ds, st)
	underWay := 0
	for _, obj := range e.store.List() {
		if st, found, _ := state.Decode(obj.(*appsv1.DaemonSet).Annotations); found && !st.Terminal() {
			underWay++
		}
	}
	e.mu.Lock()
	e.maxUnderWay = max(e.maxUnderWay, underWay)
	e.adopts[key]++
	e.adoptedWith[key] = s
	e.mu.Unlock()
	return st, nil
}

func (e *fakeEngine) Step(_ context.Context, namespace, name string) (StepResult, error) {
	key := namespace + "/" + name
	e.enter(key)
	defer e.leave(key)
	time.Sleep(time.Millisecond)
	e.mu.Lock()
	if e.fail[key] > 0 {
		e.fail[key]--
		e.mu.Unlock()
		return StepResult{}, errors.New("the API server said no")
	}
	e.stepsTaken[key]++
	n := e.stepsTaken[key]
	e.mu.Unlock()
	obj, _, _ := e.store.GetByKey(key)
	ds := obj.(*appsv1.DaemonSet)
	st, _, _ := state.Decode(ds.Annotations)
	if n < e.steps {
		return StepResult{State: st, RequeueAfter: e.every}, nil
	}
	st.Phase = state.Complete
	e.write(ds, st)
	return StepResult{State: st, Decision: &analyze.Decision{Verdict: analyze.Proceed, Reasons: nil}}, nil
}

func (e *fakeEngine) Release(_ context.Context, ds *appsv1.DaemonSet, _ string) error {
	ds = ds.DeepCopy()
	delete(ds.Annotations, hold.HeldAnnotation)
	return e.store.Update(ds)
}

func heldDaemonSet(ns, name string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{hold.HeldAnnotation: hold.HeldCreate}},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "agent", Image: "agent:v1"}}}}},
	}
}

// harness wires a reconciler and a queue to stores, as the controller wires them to informers.
func harness(t *testing.T, engine func(cache.Indexer) *fakeEngine, policies []*v1alpha1.RolloutPolicy, objs ...*appsv1.DaemonSet) (*fakeEngine, *Queue, cache.Indexer, *Reconciler) {
	t.Helper()
	dsStore := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	nsStore := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, ds := range objs {
		if err := dsStore.Add(ds); err != nil {
			t.Fatal(err)
		}
		_ = nsStore.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ds.Namespace, Labels: map[string]string{corev1.LabelMetadataName: ds.Namespace}}})
	}
	e := engine(dsStore)
	r := &Reconciler{
		Engine: e, DaemonSets: appslisters.NewDaemonSetLister(dsStore), Namespaces: corelisters.NewNamespaceLister(nsStore),
		Policies:       func() ([]*v1alpha1.RolloutPolicy, error) { return policies, nil },
		WaitingRequeue: 5 * time.Millisecond,
		Metrics:        NewMetrics(appslisters.NewDaemonSetLister(dsStore), nil),
	}
	return e, NewQueue(r.Reconcile, 5*time.Millisecond, 50*time.Millisecond, nil), dsStore, r
}

func runUntil(t *testing.T, q *Queue, workers int, keys []string, done func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() { q.Run(ctx, workers); close(finished) }()
	for _, k := range keys {
		q.Add(k)
	}
	deadline := time.After(20 * time.Second)
	for !done() {
		select {
		case <-deadline:
			cancel()
			<-finished
			t.Fatalf("the rollouts did not finish in time")
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	<-finished
}

func TestAHeldDaemonSetIsAdoptedOnceAndSteppedToItsEnd(t *testing.T) {
	policy := &v1alpha1.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: "agents"},
		Spec: v1alpha1.RolloutPolicySpec{Namespaces: []string{"agents"}, Waves: []string{"1%", "100%"}, Soak: "30s", Budget: map[string]string{"seats": "10%", "cpu": "25%"}}}
	e, q, _, _ := harness(t, func(s cache.Indexer) *fakeEngine { return newFakeEngine(s, 4, 10*time.Millisecond) },
		[]*v1alpha1.RolloutPolicy{policy}, heldDaemonSet("agents", "agent"))
	runUntil(t, q, 2, []string{"agents/agent"}, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.stepsTaken["agents/agent"] >= 4
	})
	// The queue may still hold a wake-up from the informer; the rollout is over, so it does nothing.
	if e.adopts["agents/agent"] != 1 || e.stepsTaken["agents/agent"] != 4 {
		t.Fatalf("adopted %d times, %d steps; want 1 adoption and the 4 steps the rollout needed", e.adopts["agents/agent"], e.stepsTaken["agents/agent"])
	}
	want := v1alpha1.Settings{Mode: v1alpha1.Guard, Waves: "1%,100%", Soak: 30 * time.Second, Budget: "cpu=25%,seats=10%"}
	if got := e.adoptedWith["agents/agent"]; got != want {
		t.Fatalf("adopted with %+v, want the policy's settings %+v", got, want)
	}
}

func TestManyRolloutsRunAtOnceEachOneStepAtATime(t *testing.T) {
	var objs []*appsv1.DaemonSet
	var keys []string
	for i := range 30 {
		ds := heldDaemonSet(fmt.Sprintf("team-%d", i%5), fmt.Sprintf("agent-%d", i))
		objs = append(objs, ds)
		keys = append(keys, ds.Namespace+"/"+ds.Name)
	}
	const workers = 4
	e, q, _, _ := harness(t, func(s cache.Indexer) *fakeEngine { return newFakeEngine(s, 5, 2*time.Millisecond) }, nil, objs...)
	runUntil(t, q, workers, keys, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, k := range keys {
			if e.stepsTaken[k] < 5 {
				return false
			}
		}
		return true
	})
	if e.overlapped {
		t.Fatalf("a DaemonSet had two steps in flight at once")
	}
	if e.maxFlight > workers || e.maxFlight < 2 {
		t.Fatalf("%d steps in flight at most; want several at once but never more than the %d workers", e.maxFlight, workers)
	}
	for _, k := range keys {
		if e.adopts[k] != 1 || e.stepsTaken[k] != 5 {
			t.Fatalf("%s: %d adoptions, %d steps; want 1 and 5", k, e.adopts[k], e.stepsTaken[k])
		}
	}
}

func TestNoMoreRolloutsThanAllowedAreUnderWayAtOnce(t *testing.T) {
	var objs []*appsv1.DaemonSet
	var keys []string
	for i := range 8 {
		ds := heldDaemonSet("agents", fmt.Sprintf("agent-%d", i))
		objs = append(objs, ds)
		keys = append(keys, ds.Namespace+"/"+ds.Name)
	}
	e, q, _, r := harness(t, func(s cache.Indexer) *fakeEngine { return newFakeEngine(s, 3, 2*time.Millisecond) }, nil, objs...)
	r.MaxRollouts = 2
	runUntil(t, q, 4, keys, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, k := range keys {
			if e.stepsTaken[k] < 3 {
				return false
			}
		}
		return true
	})
	if e.maxUnderWay != 2 {
		t.Fatalf("%d rollouts under way at most; want the 2 allowed (and every held DaemonSet rolled out in turn)", e.maxUnderWay)
	}
}

func TestAFailedStepIsRetriedWithBackOff(t *testing.T) {
	e, q, store, _ := harness(t, func(s cache.Indexer) *fakeEngine { return newFakeEngine(s, 2, time.Millisecond) }, nil, heldDaemonSet("agents", "agent"))
	e.fail["agents/agent"] = 3
	start := time.Now()
	runUntil(t, q, 1, []string{"agents/agent"}, func() bool {
		obj, _, _ := store.GetByKey("agents/agent")
		st, _, _ := state.Decode(obj.(*appsv1.DaemonSet).Annotations)
		return st.Phase == state.Complete
	})
	// Back-off doubles from 5 ms: 5 + 10 + 20 ms at least before the fourth try.
	if took := time.Since(start); took < 35*time.Millisecond {
		t.Fatalf("three failures were retried within %v; want exponential back-off", took)
	}
	if e.stepsTaken["agents/agent"] != 2 {
		t.Fatalf("%d successful steps, want 2", e.stepsTaken["agents/agent"])
	}
}
