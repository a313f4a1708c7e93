package top

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
)

// Source takes snapshots of the control plane; *controlplane.Scraper is one.
type Source interface {
	Scrape(ctx context.Context) controlplane.Snapshot
}

// ReadFunc produces the next Reading. Live calls it every interval.
type ReadFunc func(ctx context.Context) (controlplane.Reading, error)

// Consecutive reads from successive snapshots of src: each Reading covers the time since the
// previous call, and the first call takes two snapshots interval apart (rates need a window).
func Consecutive(src Source, interval time.Duration) ReadFunc {
	var prev *controlplane.Snapshot
	return func(ctx context.Context) (controlplane.Reading, error) {
		if prev == nil {
			first := src.Scrape(ctx)
			prev = &first
			select {
			case <-ctx.Done():
				return controlplane.Reading{}, fmt.Errorf("waiting for the second scrape: %w", ctx.Err())
			case <-time.After(interval):
			}
		}
		cur := src.Scrape(ctx)
		r := controlplane.Analyze(*prev, cur)
		prev = &cur
		return r, nil
	}
}

// Windowed reads from a Prometheus source: each Reading covers the window ending now.
func Windowed(src *controlplane.PrometheusSource, window time.Duration) ReadFunc {
	return func(ctx context.Context) (controlplane.Reading, error) {
		now := time.Now()
		prev, err := src.SnapshotAt(ctx, now.Add(-window))
		if err != nil {
			return controlplane.Reading{}, err
		}
		cur, err := src.SnapshotAt(ctx, now)
		if err != nil {
			return controlplane.Reading{}, err
		}
		return controlplane.Analyze(prev, cur), nil
	}
}

const (
	clearScreen = "\x1b[H\x1b[2J"
	footer      = "keys: s next sort · r summed/per replica · q quit"
)

type result struct {
	reading controlplane.Reading
	err     error
}

// Live redraws the view every interval until ctx ends or q (or Ctrl-C, in a raw terminal) is
// read from keys. A failed read is shown above the last good Reading. Output lines end in \r\n
// so that they render in a raw-mode terminal.
func Live(ctx context.Context, read ReadFunc, keys io.Reader, out io.Writer, interval time.Duration, v View) error {
	if v.Sort == "" {
		v.Sort = BySeatSeconds
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result)
	go func() {
		for {
			r, err := read(ctx)
			select {
			case results <- result{r, err}:
			case <-ctx.Done():
				return
			}
			select {
			case <-time.After(interval):
			case <-ctx.Done():
				return
			}
		}
	}()
	pressed := make(chan byte)
	if keys != nil {
		go func() {
			buf := make([]byte, 1)
			for {
				if _, err := keys.Read(buf); err != nil {
					return
				}
				select {
				case pressed <- buf[0]:
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	var reading *controlplane.Reading
	var lastErr error
	draw := func() error {
		var b strings.Builder
		b.WriteString(clearScreen)
		if lastErr != nil {
			fmt.Fprintf(&b, "ERROR %v\n", lastErr)
		}
		if reading == nil {
			b.WriteString("bulkhead top: waiting for a second scrape to compute rates…\n")
		} else if err := Render(&b, *reading, v); err != nil {
			return err
		}
		b.WriteString("\n" + footer + "\n")
		_, err := io.WriteString(out, strings.ReplaceAll(b.String(), "\n", "\r\n"))
		return err
	}
	if err := draw(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case res := <-results:
			lastErr = res.err
			if res.err == nil {
				reading = &res.reading
			}
		case key := <-pressed:
			switch key {
			case 'q', 'Q', 3: // 3 is Ctrl-C in a raw terminal
				return nil
			case 's':
				v.Sort = v.Sort.next()
			case 'r':
				v.PerReplica = !v.PerReplica
			default:
				continue
			}
		}
		if err := draw(); err != nil {
			return err
		}
	}
}
