package check

import (
	"fmt"
	"time"
)

// Flow is another flow schema's health during the soak and before the rollout.
type Flow struct {
	FlowSchema, PriorityLevel              string
	RejectedPerSec, BaselineRejectedPerSec float64
	WaitP99, BaselineWaitP99               time.Duration
}

// Collateral halts when another flow is rejected, or waits in APF queues, more than before the
// rollout.
func Collateral(flows []Flow, g Guards) Result {
	r := Result{Check: "collateral", MaxNextWave: -1}
	for _, f := range flows {
		name := fmt.Sprintf("flow schema %s (priority level %s)", f.FlowSchema, f.PriorityLevel)
		if f.RejectedPerSec > f.BaselineRejectedPerSec+g.OtherRejectionsPerSec {
			r.Halts = append(r.Halts, fmt.Sprintf("collateral damage: %s is being rejected, %.2f/s (before the rollout: %.2f/s)",
				name, f.RejectedPerSec, f.BaselineRejectedPerSec))
		}
		if f.WaitP99 > f.BaselineWaitP99+g.OtherWaitIncrease {
			r.Halts = append(r.Halts, fmt.Sprintf("collateral damage: %s waits %v at p99 in APF queues (before the rollout: %v)",
				name, round(f.WaitP99), round(f.BaselineWaitP99)))
		}
	}
	return r
}
