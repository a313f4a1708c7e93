package check

import (
	"fmt"
	"strings"
	"time"
)

// SLI is one latency indicator of the API servers over the soak, e.g. GET resource.
type SLI struct {
	Verb, Scope string
	P99, SLO    time.Duration
	// Requests is how many requests the p99 is computed from: a p99 of a handful says little.
	Requests int64
}

// Flow is another flow schema's health during the soak and before the rollout.
type Flow struct {
	FlowSchema, PriorityLevel              string
	RejectedPerSec, BaselineRejectedPerSec float64
	WaitP99, BaselineWaitP99               time.Duration
}

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

// SLOs halts on any latency indicator over its objective, over enough requests to mean something.
func SLOs(slis []SLI, g Guards) Result {
	r := Result{Check: "slo", MaxNextWave: -1}
	for _, s := range slis {
		if s.Requests >= g.MinSLIRequests && s.SLO > 0 && s.P99 > s.SLO {
			r.Halts = append(r.Halts, fmt.Sprintf("SLO breached: %s %s p99 %v > %v (%d requests)",
				strings.ToUpper(s.Verb), s.Scope, round(s.P99), round(s.SLO), s.Requests))
		}
	}
	return r
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

// Readiness holds while the wave's agents start and halts when they are not Ready in time; once
// they are, it holds until the soak is done and the steady window has enough samples.
func Readiness(w Wave) Result {
	r := Result{Check: "readiness", MaxNextWave: -1}
	a := w.Agents
	if !w.AllReady() {
		msg := fmt.Sprintf("%d of %d new agents Ready after %v", a.Ready, a.Desired, round(w.Elapsed))
		if w.Elapsed >= w.Timing.ReadyTimeout {
			r.Halts = append(r.Halts, msg+fmt.Sprintf(", past the %v allowed", round(w.Timing.ReadyTimeout)))
		} else {
			r.Holds = append(r.Holds, "waiting for agents: "+msg)
		}
		return r
	}
	if !w.Soaked() {
		r.Holds = append(r.Holds, fmt.Sprintf("soaking: %v of %v", round(w.Elapsed-w.readyAt()), round(w.Soak)))
		return r
	}
	_, steady := w.split()
	if n := len(steady); n < w.Timing.MinSteadySamples {
		msg := fmt.Sprintf("%d steady samples, want %d", n, w.Timing.MinSteadySamples)
		if w.Exhausted() {
			r.Halts = append(r.Halts, "no usable steady-state measurement: "+msg+fmt.Sprintf(" after %v", round(w.Timing.MaxSoak)))
		} else {
			r.Holds = append(r.Holds, "too little steady data: "+msg)
		}
	}
	return r
}
