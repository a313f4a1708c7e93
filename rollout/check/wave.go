package check

import (
	"fmt"
	"math"
	"time"
)

// Wave is everything the checks see of one wave (or of an update's baseline, wave 0).
type Wave struct {
	// Number is 0 for the baseline soak of an update, then 1, 2, ...
	Number int
	// Fleet is the number of eligible nodes: the agents that run at 100%.
	Fleet int
	// Soak is how long to watch the wave once all its agents are Ready; Elapsed is the time
	// since its pods were created (or the baseline began).
	Soak, Elapsed time.Duration
	Agents        Agents
	// Intervals are the scrape intervals since the wave began, oldest first.
	Intervals []Interval
	// Reference is the servers before this wave's agents, for the CPU difference.
	Reference Reference
	// History holds the earlier waves' records (the baseline included).
	History []Record
	// Limits are the budget per resource; Timing the soak's thresholds.
	Limits map[Resource]Limit
	Timing Timing
}

// Timing are the thresholds of a soak.
type Timing struct {
	// Settle is how long after the last agent becomes Ready its start-up burst is assumed
	// over; intervals beginning later are steady state.
	Settle time.Duration
	// MinSteadySamples is the fewest steady intervals a proceed may rest on.
	MinSteadySamples int
	// ReadyTimeout is how long a wave's agents have to become Ready (default: Soak).
	ReadyTimeout time.Duration
	// MaxSoak is how long, after the agents are Ready, to keep soaking while the data stays
	// inconclusive before halting (default: 3 × Soak).
	MaxSoak time.Duration
	// MaxQuiet is how long to wait for a request from agents that made ordinary requests at
	// start-up and none since (pollers with a long period) while the bound on their cost does
	// not fit (default: 30 minutes).
	MaxQuiet time.Duration
}

// DefaultTiming is the thresholds for a soak of the given length.
func DefaultTiming(soak time.Duration) Timing {
	return Timing{Settle: 15 * time.Second, MinSteadySamples: 3, ReadyTimeout: soak, MaxSoak: 3 * soak, MaxQuiet: 30 * time.Minute}
}

// WithDefaults fills zero fields from DefaultTiming.
func (t Timing) WithDefaults(soak time.Duration) Timing {
	d := DefaultTiming(soak)
	if t.Settle == 0 {
		t.Settle = d.Settle
	}
	if t.MinSteadySamples == 0 {
		t.MinSteadySamples = d.MinSteadySamples
	}
	if t.ReadyTimeout == 0 {
		t.ReadyTimeout = d.ReadyTimeout
	}
	if t.MaxSoak == 0 {
		t.MaxSoak = d.MaxSoak
	}
	if t.MaxQuiet == 0 {
		t.MaxQuiet = d.MaxQuiet
	}
	return t
}

// Validate says what is wrong with nonsense observations.
func (w Wave) Validate() error {
	a := w.Agents
	switch {
	case w.Number < 0:
		return fmt.Errorf("wave %d is negative", w.Number)
	case w.Fleet <= 0:
		return fmt.Errorf("fleet size %d: want at least one eligible node", w.Fleet)
	case w.Soak <= 0:
		return fmt.Errorf("soak %v must be positive", w.Soak)
	case a.Desired < 0 || a.Ready < 0 || a.Started < 0 || a.Old < 0:
		return fmt.Errorf("negative agent counts %+v", a)
	case a.Ready > a.Desired:
		return fmt.Errorf("%d agents Ready but only %d desired", a.Ready, a.Desired)
	case a.Desired > w.Fleet:
		return fmt.Errorf("%d agents desired in a fleet of %d", a.Desired, w.Fleet)
	case w.Number == 0 && a.Desired > 0:
		return fmt.Errorf("the baseline (wave 0) cannot have new agents (%d)", a.Desired)
	}
	return nil
}

// AllReady reports whether every agent of the wave is Ready.
func (w Wave) AllReady() bool { return w.Agents.Ready == w.Agents.Desired }

// readyAt is when the wave's agents were all Ready; the baseline, which starts nothing, is
// ready from the beginning.
func (w Wave) readyAt() time.Duration {
	if w.Agents.Started == 0 {
		return 0
	}
	return w.Agents.ReadyAt
}

// SteadyFrom is where the steady window opens: once every agent is Ready and has settled.
// Never while agents are still starting.
func (w Wave) SteadyFrom() time.Duration {
	switch {
	case w.Agents.Started == 0:
		return 0
	case !w.AllReady():
		return time.Duration(math.MaxInt64)
	}
	return w.Agents.ReadyAt + w.Timing.Settle
}

// Soaked reports whether the soak is done; Exhausted whether the longest soak is.
func (w Wave) Soaked() bool    { return w.AllReady() && w.Elapsed >= w.readyAt()+w.Soak }
func (w Wave) Exhausted() bool { return w.AllReady() && w.Elapsed >= w.readyAt()+w.Timing.MaxSoak }

// steady and burst split the intervals at SteadyFrom.
func (w Wave) split() (burst, steady []Interval) {
	from := w.SteadyFrom()
	for _, iv := range w.Intervals {
		if iv.End-iv.Span >= from {
			steady = append(steady, iv)
		} else {
			burst = append(burst, iv)
		}
	}
	return burst, steady
}

// utilization is the servers' mean CPU utilisation over the steady window, 0 when unknown.
func (w Wave) utilization() float64 {
	capacity := w.Limits[CPU].Capacity
	_, steady := w.split()
	var cpu, seconds float64
	for _, iv := range steady {
		if iv.CPUKnown {
			cpu += iv.ServerCPU * iv.Span.Seconds()
			seconds += iv.Span.Seconds()
		}
	}
	if capacity <= 0 || seconds == 0 {
		return 0
	}
	return cpu / seconds / capacity
}

// quiet says whether the agents made ordinary requests while starting but none in the steady
// window so far, and for how long: pollers whose period is longer than the soak look like that.
func (w Wave) quiet() (time.Duration, bool) {
	if w.Agents.Started == 0 {
		return 0, false
	}
	burst, steady := w.split()
	if len(steady) == 0 {
		return 0, false
	}
	var atStart, since float64
	for _, iv := range burst {
		atStart += iv.ordinary() * iv.Span.Seconds()
	}
	var seconds float64
	for _, iv := range steady {
		since += iv.ordinary() * iv.Span.Seconds()
		seconds += iv.Span.Seconds()
	}
	// Less than half a request in the window counts as none: rates are per-second averages of
	// counters, and a request straddling two scrapes is split between them.
	return time.Duration(seconds * float64(time.Second)), atStart >= 0.5 && since < 0.5
}
