package check

import "time"

// Guards are the thresholds of the checks that halt without predicting.
type Guards struct {
	// MinSLIRequests is the fewest requests behind a p99 that may halt a rollout.
	MinSLIRequests int64
	// OtherRejectionsPerSec is the rise in another flow's rejection rate taken as damage;
	// OtherWaitIncrease the rise in its queue-wait p99.
	OtherRejectionsPerSec float64
	OtherWaitIncrease     time.Duration
}

// DefaultGuards are the thresholds used for zero fields.
var DefaultGuards = Guards{MinSLIRequests: 50, OtherRejectionsPerSec: 0.05, OtherWaitIncrease: 500 * time.Millisecond}

// WithDefaults fills zero fields from DefaultGuards.
func (g Guards) WithDefaults() Guards {
	if g.MinSLIRequests == 0 {
		g.MinSLIRequests = DefaultGuards.MinSLIRequests
	}
	if g.OtherRejectionsPerSec == 0 {
		g.OtherRejectionsPerSec = DefaultGuards.OtherRejectionsPerSec
	}
	if g.OtherWaitIncrease == 0 {
		g.OtherWaitIncrease = DefaultGuards.OtherWaitIncrease
	}
	return g
}
