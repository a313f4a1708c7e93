package top

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
)

// replay hands out recorded snapshots in order, repeating the last one.
type replay struct {
	mu    sync.Mutex
	snaps []controlplane.Snapshot
	calls int
}

func (r *replay) Scrape(context.Context) controlplane.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	return r.snaps[min(r.calls, len(r.snaps))-1]
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, out *syncBuffer, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(lastScreen(out.String()), text) {
		if time.Now().After(deadline) {
			t.Fatalf("output never showed %q; last screen:\n%s", text, lastScreen(out.String()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func lastScreen(s string) string {
	if i := strings.LastIndex(s, clearScreen); i >= 0 {
		return s[i+len(clearScreen):]
	}
	return s
}

func TestLiveRedrawsAndFollowsKeys(t *testing.T) {
	src := &replay{snaps: snapshotsFromReadingFixtures(t)}
	keysReader, keys := io.Pipe()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Live(context.Background(), Consecutive(src, 50*time.Millisecond), keysReader, out, 50*time.Millisecond, View{})
	}()

	waitFor(t, out, "sort seats  view summed")
	keys.Write([]byte("r"))
	waitFor(t, out, "view per replica")
	keys.Write([]byte("s"))
	waitFor(t, out, "sort rps  view per replica")
	keys.Write([]byte("q"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Live returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Live did not stop on q")
	}
	screen := lastScreen(out.String())
	if !strings.Contains(screen, "REPLICA 10.0.0.2:6443 unreachable\r\n") || strings.Contains(strings.ReplaceAll(screen, "\r\n", ""), "\n") {
		t.Errorf("last screen lacks the unreachable replica or has bare newlines:\n%q", screen)
	}
}

func TestLiveStopsWhenTheContextEnds(t *testing.T) {
	src := &replay{snaps: snapshotsFromReadingFixtures(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	out := &syncBuffer{}
	if err := Live(ctx, Consecutive(src, 10*time.Millisecond), nil, out, 10*time.Millisecond, View{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "bulkhead top  window") || src.calls < 2 {
		t.Errorf("after %d scrapes no reading was drawn:\n%s", src.calls, out.String())
	}
}

func TestLiveShowsAFailedReadAboveTheLastGoodReading(t *testing.T) {
	good := labReading(t, "agent-0.prom.gz", "agent-1.prom.gz")
	calls := 0
	read := func(context.Context) (controlplane.Reading, error) {
		calls++
		if calls == 1 {
			return good, nil
		}
		return controlplane.Reading{}, errors.New("prometheus http://prom:9090 unreachable: connection refused")
	}
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Live(ctx, read, nil, out, 20*time.Millisecond, View{}) }()
	waitFor(t, out, "ERROR prometheus http://prom:9090 unreachable: connection refused\r\nbulkhead top  window 10.1s")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
