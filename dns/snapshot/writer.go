package snapshot

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Writer writes the latest submitted State at most once per Delay. A burst of changes costs one
// write; the newest State always wins.
type Writer struct {
	Path  string
	Delay time.Duration
	Log   *slog.Logger
	// Written is called after every write attempt, with its error (nil on success).
	Written func(st *State, err error)

	mu      sync.Mutex
	pending *State
	wake    chan struct{}
	once    sync.Once
}

func (w *Writer) init() { w.once.Do(func() { w.wake = make(chan struct{}, 1) }) }

// Submit schedules st to be written, replacing any State not yet written.
func (w *Writer) Submit(st *State) {
	w.init()
	w.mu.Lock()
	w.pending = st
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run writes submitted States until ctx ends, then writes the last pending one.
func (w *Writer) Run(ctx context.Context) {
	w.init()
	for {
		select {
		case <-ctx.Done():
			w.flush()
			return
		case <-w.wake:
		}
		select {
		case <-ctx.Done():
		case <-time.After(w.Delay):
		}
		w.flush()
	}
}

func (w *Writer) flush() {
	w.mu.Lock()
	st := w.pending
	w.pending = nil
	w.mu.Unlock()
	if st == nil {
		return
	}
	err := Write(w.Path, st)
	if err != nil && w.Log != nil {
		w.Log.Error("snapshot write failed", "path", w.Path, "err", err)
	}
	if w.Written != nil {
		w.Written(st, err)
	}
}
