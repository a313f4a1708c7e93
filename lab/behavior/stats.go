package behavior

import (
	"errors"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Stats records what the emulator did, per service account, verb and resource: request counts,
// errors, bytes and a latency histogram. Benchmarks read it through the lab's control socket.
type Stats struct {
	mu      sync.Mutex
	actions map[StatKey]*actionStats
}

// StatKey identifies one kind of emulated request.
type StatKey struct {
	ServiceAccount string `json:"serviceAccount"` // namespace/name
	Verb           Verb   `json:"verb"`
	Resource       string `json:"resource"`
}

// ActionStats is a snapshot of one kind of request. Latencies are in seconds.
type ActionStats struct {
	StatKey
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	// Rejected counts the errors that were 429s: API Priority and Fairness (or max-inflight)
	// turned the request away instead of serving it.
	Rejected int64   `json:"rejected"`
	Bytes    int64   `json:"bytes"`
	P50      float64 `json:"p50"`
	P99      float64 `json:"p99"`
	Max      float64 `json:"max"`
}

// Latency buckets grow by 10% from 100µs, reaching past 10 minutes: quantiles are exact to 10%.
const (
	bucketBase   = 100e-6
	bucketGrowth = 1.1
	bucketCount  = 170
)

type actionStats struct {
	requests, errors, rejected, bytes int64
	max                               float64
	buckets                           [bucketCount]int64
}

// NewStats returns empty statistics.
func NewStats() *Stats { return &Stats{actions: map[StatKey]*actionStats{}} }

// Record adds one request: its latency (ignored for watches), bytes read and why it failed (nil:
// it did not).
func (s *Stats) Record(k StatKey, latency time.Duration, bytes int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.actions[k]
	if a == nil {
		a = &actionStats{}
		s.actions[k] = a
	}
	a.requests++
	a.bytes += bytes
	if err != nil {
		a.errors++
		var status *statusError
		if errors.As(err, &status) && status.code == http.StatusTooManyRequests {
			a.rejected++
		}
	}
	if k.Verb == VerbWatch {
		return
	}
	sec := latency.Seconds()
	a.max = math.Max(a.max, sec)
	a.buckets[bucketIndex(sec)]++
}

// Snapshot returns the statistics sorted by key; with reset it also starts a new window.
func (s *Stats) Snapshot(reset bool) []ActionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ActionStats, 0, len(s.actions))
	for k, a := range s.actions {
		out = append(out, ActionStats{
			StatKey: k, Requests: a.requests, Errors: a.errors, Rejected: a.rejected, Bytes: a.bytes,
			P50: a.quantile(0.50), P99: a.quantile(0.99), Max: a.max,
		})
	}
	if reset {
		s.actions = map[StatKey]*actionStats{}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].StatKey, out[j].StatKey
		if a.ServiceAccount != b.ServiceAccount {
			return a.ServiceAccount < b.ServiceAccount
		}
		if a.Verb != b.Verb {
			return a.Verb < b.Verb
		}
		return a.Resource < b.Resource
	})
	return out
}

func bucketIndex(sec float64) int {
	if sec <= bucketBase {
		return 0
	}
	i := int(math.Ceil(math.Log(sec/bucketBase) / math.Log(bucketGrowth)))
	return min(i, bucketCount-1)
}

// quantile returns the upper bound of the bucket holding the q-th observation.
func (a *actionStats) quantile(q float64) float64 {
	var total int64
	for _, c := range a.buckets {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(total)))
	var seen int64
	for i, c := range a.buckets {
		seen += c
		if seen >= rank {
			return math.Min(bucketBase*math.Pow(bucketGrowth, float64(i)), a.max)
		}
	}
	return a.max
}
