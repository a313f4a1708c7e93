package analyze

import (
	"github.com/bulkhead-dev/bulkhead/rollout/check"
)

// Observations is everything one wave's soak measured, plus what earlier waves left behind.
// The soak fills it from the control plane's readings and the DaemonSet's pods; Analyze never
// looks anywhere else.
type Observations struct {
	// Wave is what the resource checks read: the scrape intervals, agents, earlier waves,
	// limits and timing.
	Wave check.Wave
	// SLIs are the API servers' latency indicators over the soak, per verb and scope.
	SLIs []check.SLI
	// Others are every other flow schema seen during the soak (the lane excluded), with the
	// same figures from before the rollout began.
	Others []check.Flow
	// Guards tune the halts that need no prediction; zero fields take check.DefaultGuards.
	Guards check.Guards
	// Notes are what the soak has to say about its own measurement (replicas it could not read).
	Notes []string
}
