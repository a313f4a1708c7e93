package controller

import (
	"context"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"
)

// Queue runs a reconcile function for DaemonSet keys ("namespace/name") with a fixed number
// of workers. The work queue never hands one key to two workers at once, so each rollout has
// at most one step in flight; a key asks to come back after a delay (a soak's next sample),
// never sooner than MinRequeue, so no rollout can spin; failures back off exponentially.
type Queue struct {
	reconcile  func(ctx context.Context, key string) (time.Duration, error)
	q          workqueue.TypedRateLimitingInterface[string]
	minRequeue time.Duration
	onError    func(key string, err error)
}

// NewQueue makes a queue; onError (may be nil) hears every failed reconcile.
func NewQueue(reconcile func(ctx context.Context, key string) (time.Duration, error), minRequeue, maxBackoff time.Duration, onError func(string, error)) *Queue {
	limiter := workqueue.NewTypedItemExponentialFailureRateLimiter[string](minRequeue, maxBackoff)
	return &Queue{
		reconcile:  reconcile,
		q:          workqueue.NewTypedRateLimitingQueueWithConfig(limiter, workqueue.TypedRateLimitingQueueConfig[string]{Name: "bulkhead-rollouts"}),
		minRequeue: minRequeue,
		onError:    onError,
	}
}

// Add asks for key to be reconciled (again). Adding a key already waiting does nothing.
func (q *Queue) Add(key string) { q.q.Add(key) }

// Len is how many keys wait.
func (q *Queue) Len() int { return q.q.Len() }

// Run works until ctx ends, then stops taking keys and waits for the steps in flight.
func (q *Queue) Run(ctx context.Context, workers int) {
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	q.q.ShutDownWithDrain()
	wg.Wait()
}

func (q *Queue) next(ctx context.Context) bool {
	key, shutdown := q.q.Get()
	if shutdown {
		return false
	}
	defer q.q.Done(key)
	after, err := q.reconcile(ctx, key)
	if err != nil {
		if q.onError != nil {
			q.onError(key, err)
		}
		q.q.AddRateLimited(key)
		return true
	}
	q.q.Forget(key)
	if after > 0 {
		q.q.AddAfter(key, max(after, q.minRequeue))
	}
	return true
}
