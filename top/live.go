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

// Once takes two snapshots interval apart and analyzes them: rates need a window.
func Once(ctx context.Context, src Source, interval time.Duration) (controlplane.Reading, error) {
	prev := src.Scrape(ctx)
	select {
	case <-ctx.Done():
		return controlplane.Reading{}, fmt.Errorf("waiting for the second scrape: %w", ctx.Err())
	case <-time.After(interval):
	}
	return controlplane.Analyze(prev, src.Scrape(ctx)), nil
}

const (
	clearScreen = "\x1b[H\x1b[2J"
	footer      = "keys: s next sort · r summed/per replica · q quit"
)

// Live redraws the view every interval until ctx ends or q (or Ctrl-C, in a raw terminal) is
// read from keys. Output lines end in \r\n so that they render in a raw-mode terminal.
func Live(ctx context.Context, src Source, keys io.Reader, out io.Writer, interval time.Duration, v View) error {
	if v.Sort == "" {
		v.Sort = BySeatSeconds
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	snapshots := make(chan controlplane.Snapshot)
	go func() {
		for {
			snap := src.Scrape(ctx)
			select {
			case snapshots <- snap:
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

	var prev *controlplane.Snapshot
	var reading *controlplane.Reading
	draw := func() error {
		var b strings.Builder
		b.WriteString(clearScreen)
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
		case snap := <-snapshots:
			if prev != nil {
				r := controlplane.Analyze(*prev, snap)
				reading = &r
			}
			prev = &snap
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
