package analyze

import (
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/predict"
)

// Observations is everything one wave's soak measured, plus what earlier waves left behind.
// The executor fills it from the control plane's readings and the DaemonSet's pods; Analyze
// never looks anywhere else.
type Observations struct {
	// Wave is 0 for the baseline soak of an update (all agents still old, nothing changed
	// yet), then 1, 2, ... for the waves.
	Wave int
	// FleetSize is the number of eligible nodes: the agents that run at 100%.
	FleetSize int
	// BudgetSeats is what the DaemonSet may use at 100%, in APF seats (--budget × the
	// server's seats).
	BudgetSeats float64
	// Soak is how long to watch a wave once all its agents are Ready.
	Soak time.Duration
	// Elapsed is the time since the wave's pods were created (or the baseline began).
	Elapsed time.Duration

	Agents Agents
	// Lane holds the rollout lane's scrape intervals since the wave began, oldest first.
	Lane []predict.Sample
	// History holds the steady points of earlier waves (the baseline included), for the
	// per-version regression; PriorBurstPerAgent is the largest start-up burst per agent
	// they saw, in seats.
	History            []predict.Point
	PriorBurstPerAgent float64

	// SLIs are the API server's latency indicators over the wave, per verb and scope.
	SLIs []SLI
	// Others are every other flow schema seen during the wave (the lane excluded), with the
	// same figures from before the rollout began.
	Others []Flow

	// Limits tune the decision; zero fields take DefaultLimits.
	Limits Limits
}

// Agents counts the DaemonSet's pods for this wave.
type Agents struct {
	// Desired is how many new-version pods exist after this wave (cumulative); Ready is how
	// many of them are Ready; Started is how many were created in this wave.
	Desired, Ready, Started int
	// Old is the number of old-version pods still running (updates only).
	Old int
	// ReadyAt is Elapsed at the moment Ready reached Desired; only meaningful then.
	ReadyAt time.Duration
}

// SLI is one latency indicator, e.g. GET resource, or LIST cluster.
type SLI struct {
	Verb, Scope string
	P99, SLO    time.Duration
	// Requests is how many requests the p99 is computed from: a p99 of a handful says little.
	Requests int64
}

// Flow is another flow schema's health during the wave and before the rollout.
type Flow struct {
	FlowSchema, PriorityLevel              string
	RejectedPerSec, BaselineRejectedPerSec float64
	WaitP99, BaselineWaitP99               time.Duration
}

// Limits are the thresholds of a decision.
type Limits struct {
	// Settle is how long after the last agent becomes Ready its start-up burst is assumed
	// over; intervals beginning later are steady state.
	Settle time.Duration
	// MinSteadySamples is the fewest steady intervals a proceed may rest on.
	MinSteadySamples int
	// ReadyTimeout is how long a wave's agents have to become Ready (default: Soak).
	ReadyTimeout time.Duration
	// MaxSoak is how long, after the agents are Ready, to keep soaking while the data stays
	// inconclusive before giving up and halting (default: 3 × Soak).
	MaxSoak time.Duration
	// MinSLIRequests is the fewest requests behind a p99 that may halt a rollout.
	MinSLIRequests int64
	// OtherRejectionsPerSec is the rise in another flow's rejection rate taken as damage.
	OtherRejectionsPerSec float64
	// OtherWaitIncrease is the rise in another flow's queue-wait p99 taken as damage.
	OtherWaitIncrease time.Duration
}

// DefaultLimits returns the limits used for zero fields, for a given soak.
func DefaultLimits(soak time.Duration) Limits {
	return Limits{
		Settle:                15 * time.Second,
		MinSteadySamples:      3,
		ReadyTimeout:          soak,
		MaxSoak:               3 * soak,
		MinSLIRequests:        50,
		OtherRejectionsPerSec: 0.05,
		OtherWaitIncrease:     500 * time.Millisecond,
	}
}

func (l Limits) withDefaults(soak time.Duration) Limits {
	d := DefaultLimits(soak)
	if l.Settle == 0 {
		l.Settle = d.Settle
	}
	if l.MinSteadySamples == 0 {
		l.MinSteadySamples = d.MinSteadySamples
	}
	if l.ReadyTimeout == 0 {
		l.ReadyTimeout = d.ReadyTimeout
	}
	if l.MaxSoak == 0 {
		l.MaxSoak = d.MaxSoak
	}
	if l.MinSLIRequests == 0 {
		l.MinSLIRequests = d.MinSLIRequests
	}
	if l.OtherRejectionsPerSec == 0 {
		l.OtherRejectionsPerSec = d.OtherRejectionsPerSec
	}
	if l.OtherWaitIncrease == 0 {
		l.OtherWaitIncrease = d.OtherWaitIncrease
	}
	return l
}

func (o Observations) validate() error {
	switch {
	case o.Wave < 0:
		return fmt.Errorf("wave %d is negative", o.Wave)
	case o.FleetSize <= 0:
		return fmt.Errorf("fleet size %d: want at least one eligible node", o.FleetSize)
	case o.BudgetSeats <= 0:
		return fmt.Errorf("budget %v seats must be positive", o.BudgetSeats)
	case o.Soak <= 0:
		return fmt.Errorf("soak %v must be positive", o.Soak)
	case o.Agents.Desired < 0 || o.Agents.Ready < 0 || o.Agents.Started < 0 || o.Agents.Old < 0:
		return fmt.Errorf("negative agent counts %+v", o.Agents)
	case o.Agents.Ready > o.Agents.Desired:
		return fmt.Errorf("%d agents Ready but only %d desired", o.Agents.Ready, o.Agents.Desired)
	case o.Agents.Desired > o.FleetSize:
		return fmt.Errorf("%d agents desired in a fleet of %d", o.Agents.Desired, o.FleetSize)
	case o.Wave == 0 && o.Agents.Desired > 0:
		return fmt.Errorf("the baseline (wave 0) cannot have new agents (%d)", o.Agents.Desired)
	}
	return nil
}
