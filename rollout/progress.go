package rollout

import (
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
)

// progressEvery is how often a soak that holds says so even when nothing else changed.
const progressEvery = 30 * time.Second

// holdReporter decides which of a soak's hold decisions to print: the first, each one whose
// main reason changes kind (agents → soaking → steady-data), and
// otherwise one every progressEvery, so a minute-long soak shows it is alive without a line
// per scrape. Final decisions are printed by the runner, not here.
type holdReporter struct {
	lastKind analyze.ReasonKind
	lastAt   time.Time
}

func (h *holdReporter) report(d analyze.Decision, now time.Time) bool {
	if d.Verdict != analyze.Hold {
		*h = holdReporter{} // the next wave starts afresh
		return false
	}
	if kind := d.Kind; h.lastAt.IsZero() || kind != h.lastKind || now.Sub(h.lastAt) >= progressEvery {
		h.lastKind, h.lastAt = kind, now
		return true
	}
	return false
}
