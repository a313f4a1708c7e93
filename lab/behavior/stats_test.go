package behavior

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"
)

func TestStatsQuantilesAreWithinBucketResolution(t *testing.T) {
	s := NewStats()
	key := StatKey{ServiceAccount: "ns/sa", Verb: VerbList, Resource: "pods"}
	// 1..100 ms: p50 = 50 ms, p99 = 99 ms.
	for i := 1; i <= 100; i++ {
		var err error
		if i%10 == 0 {
			err = &statusError{code: http.StatusForbidden}
		}
		s.Record(key, time.Duration(i)*time.Millisecond, 10, err)
	}
	snap := s.Snapshot(false)
	if len(snap) != 1 {
		t.Fatalf("got %d entries, want 1", len(snap))
	}
	got := snap[0]
	if got.Requests != 100 || got.Errors != 10 || got.Rejected != 0 || got.Bytes != 1000 {
		t.Fatalf("counts = %+v", got)
	}
	for _, q := range []struct {
		name      string
		got, want float64
	}{{"p50", got.P50, 0.050}, {"p99", got.P99, 0.099}, {"max", got.Max, 0.100}} {
		if math.Abs(q.got-q.want)/q.want > bucketGrowth-1 {
			t.Errorf("%s = %v, want %v within %.0f%%", q.name, q.got, q.want, (bucketGrowth-1)*100)
		}
	}
}

func TestStatsResetStartsANewWindow(t *testing.T) {
	s := NewStats()
	key := StatKey{ServiceAccount: "ns/sa", Verb: VerbGet, Resource: "nodes"}
	s.Record(key, time.Millisecond, 1, nil)
	if first := s.Snapshot(true); len(first) != 1 || first[0].Requests != 1 {
		t.Fatalf("first window = %+v", first)
	}
	if second := s.Snapshot(false); len(second) != 0 {
		t.Fatalf("window after reset = %+v, want empty", second)
	}
}

func TestStatsCountWatchesWithoutLatency(t *testing.T) {
	s := NewStats()
	key := StatKey{ServiceAccount: "ns/sa", Verb: VerbWatch, Resource: "services"}
	s.Record(key, 7*time.Minute, 500, nil)
	got := s.Snapshot(false)[0]
	if got.Requests != 1 || got.P99 != 0 || got.Max != 0 {
		t.Fatalf("watch stats = %+v, want one request and no latency", got)
	}
}

func TestStatsCountRejectionsApartFromOtherErrors(t *testing.T) {
	s := NewStats()
	key := StatKey{ServiceAccount: "busy/ci", Verb: VerbCreate, Resource: "pods"}
	s.Record(key, time.Millisecond, 1, nil)
	s.Record(key, time.Millisecond, 1, &statusError{code: http.StatusTooManyRequests})
	s.Record(key, time.Millisecond, 1, fmt.Errorf("create: %w", &statusError{code: http.StatusTooManyRequests}))
	s.Record(key, time.Millisecond, 1, &statusError{code: http.StatusConflict})
	s.Record(key, time.Millisecond, 1, errors.New("connection refused"))
	got := s.Snapshot(false)[0]
	if got.Requests != 5 || got.Errors != 4 || got.Rejected != 2 {
		t.Fatalf("stats = %+v, want 5 requests, 4 errors, 2 of them rejected", got)
	}
}
