package check

import (
	"fmt"
	"time"
)

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
		// A short soak with a long scrape interval may end before the steady window can hold
		// enough whole intervals (10 s soak, 15 s settle, 5 s scrapes: two): that is no reason
		// to halt. Give up only once the window has had room for them and one to spare.
		var span time.Duration
		if len(w.Intervals) > 0 {
			span = w.Intervals[len(w.Intervals)-1].Span
		}
		room := w.Elapsed-w.SteadyFrom() >= time.Duration(w.Timing.MinSteadySamples+1)*span
		if w.Exhausted() && room {
			r.Halts = append(r.Halts, "no usable steady-state measurement: "+msg+fmt.Sprintf(" after %v", round(w.Timing.MaxSoak)))
		} else {
			r.Holds = append(r.Holds, "too little steady data: "+msg)
		}
	}
	return r
}
