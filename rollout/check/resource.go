package check

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/predict"
)

// Result is one check's verdict on a wave.
type Result struct {
	// Check names it: a Resource, or "slo", "collateral", "readiness".
	Check string
	// Halts are reasons to roll back now; Holds what a decision still waits for; Notes facts
	// worth showing that decided nothing.
	Halts, Holds, Notes []string

	// The rest is set by resource checks only.
	Limit Limit
	// Measurement is the lane's demand for the resource in this wave (steady and burst).
	Measurement predict.Measurement
	// Bound says the steady demand is only an upper bound: the agents made no ordinary request
	// since start-up.
	Bound bool
	// Cost and Prediction (the fleet at 100%) are set once a cost could be fitted.
	Cost       *predict.Cost
	Prediction *predict.Prediction
	// Utilization is the servers' CPU utilisation during the steady window (0: unknown).
	Utilization float64
	// MaxNextWave is the most agents the next wave may start at once with their start-up burst
	// inside this limit; -1 when unknown.
	MaxNextWave int
	// Phrase is the resource's state in words, for the headline: "2 agents use 0.050 cores;
	// 200 agents would need 5.0 cores (95%: 4.1–5.9) of the API servers' 2 — budget 0.50 (25%)".
	Phrase string
	// Blind says why the resource could not be judged ("" when it could).
	Blind string
}

// Over is how far the prediction (or, without one, the steady demand) sits above the limit, as
// a ratio; 0 when unknown. The check with the largest ratio leads the headline.
func (r Result) Over() float64 {
	if !r.Limit.Known() || r.Limit.Value <= 0 {
		return 0
	}
	v := r.Measurement.Steady.Mean
	if r.Prediction != nil {
		v = r.Prediction.Total.Mean
	}
	return v / r.Limit.Value
}

// Record is what the wave leaves for the report and the next waves.
func (r Result) Record() Measured {
	m := Measured{Steady: r.Measurement.Steady, BurstPeakPerAgent: r.Measurement.BurstPeakPerAgent}
	if r.Prediction != nil {
		m.Predicted = interval95(r.Prediction.Total)
	}
	return m
}

// meter is how one resource is read and extrapolated.
type meter struct {
	resource Resource
	// measure reads the lane's use of the resource over the wave's intervals.
	measure func(w Wave) predict.Measurement
	// perRequest is one request's cost (resource-seconds), from the start-up intervals: the
	// price of a poll that has not come back yet.
	perRequest func(burst []Interval) float64
	// slowed: demand grows with the servers' CPU utilisation (seat-seconds, requests in
	// flight); CPU per request does not.
	slowed bool
}

// Load is the servers' CPU utilisation now and as predicted with the whole fleet running.
type Load struct {
	Now, Fleet float64
	// Known is false when the CPU capacity or use cannot be read.
	Known bool
}

// judge measures a resource, fits its cost across waves, predicts the fleet and holds it to the
// limit.
func judge(w Wave, m meter, load Load) Result {
	res := Result{Check: string(m.resource), Limit: w.Limits[m.resource], MaxNextWave: -1}
	limit := res.Limit
	res.Measurement = m.measure(w)
	res.Utilization = w.utilization()
	steady := res.Measurement.Steady
	burst, _ := w.split()
	if quietFor, quiet := w.quiet(); quiet && w.Agents.Desired > 0 {
		if c := m.perRequest(burst); c > 0 {
			// No request since start-up for quietFor: no agent polls more often than that.
			bound := c * float64(w.Agents.Desired) / quietFor.Seconds()
			steady = predict.Estimate{Mean: bound, SE: 0.02 * bound, Samples: steady.Samples}
			res.Measurement.Steady, res.Bound = steady, true
		}
	}
	// Seat and memory demand measured on a busy server are rescaled to an idle one before
	// they are compared across waves, then to the fleet's predicted load.
	scale := func(utilization float64) float64 {
		if !m.slowed || !load.Known {
			return 1
		}
		return predict.Slowdown(utilization)
	}
	points := points(w.History, m.resource, m.slowed && load.Known)
	if steady.Samples > 0 {
		quiet := steady
		quiet.Mean /= scale(res.Utilization)
		quiet.SE /= scale(res.Utilization)
		points = append(points, predict.Point{Old: w.Agents.Old, New: w.Agents.Desired, Demand: quiet})
	}
	who := fmt.Sprintf("%d agents", w.Agents.Desired)
	if w.Number == 0 {
		who = fmt.Sprintf("%d agents", w.Agents.Old)
	}
	use := fmt.Sprintf("%s use %s", who, Amount(m.resource, steady.Mean))
	if res.Bound {
		use = fmt.Sprintf("%s made no request for %v: at most %s", who, round(quietDuration(w)), Amount(m.resource, steady.Mean))
	}
	if !limit.Known() {
		res.Blind = blind(limit)
	}

	if w.Number == 0 && w.Agents.Old == 0 {
		// A new DaemonSet's baseline measures the servers before any agent runs.
		res.Phrase = servers(w, m.resource)
		if limit.Known() {
			res.Phrase += fmt.Sprintf(" (budget %s of their %s)", Amount(m.resource, limit.Value), capacity(m.resource, limit.Capacity))
		}
		return res
	}
	if w.Number == 0 {
		// Baseline: the current version alone must already fit.
		res.Phrase = use + " (the current version)" + against(limit)
		if steady.Samples > 0 && limit.Known() &&
			((steady.Samples >= 2 && steady.Low() > limit.Value) || (w.Soaked() && steady.Samples >= w.Timing.MinSteadySamples && steady.Mean > limit.Value)) {
			res.Halts = append(res.Halts, fmt.Sprintf("%s: the current version alone needs %s, above the budget of %s",
				m.resource, Amount(m.resource, steady.Mean), Amount(m.resource, limit.Value)))
		}
		return res
	}
	cost, err := predict.FitCost(points)
	unseparated := errors.Is(err, predict.ErrCannotSeparate)
	if unseparated {
		// Without an all-old point the old agents' share is unknown. Charging all of each
		// wave's demand to its new agents bounds their cost from above (old agents cost ≥ 0):
		// a fleet that fits even so proceeds; one that does not holds for a better measurement
		// (unseparatedOver), as it may be the old agents' cost.
		points = chargedToNew(points)
		res.Notes = append(res.Notes, fmt.Sprintf("%s: %v; charging the old agents' demand to the new ones (an upper bound)", m.resource, err))
		cost, err = predict.FitCost(points)
	}
	switch {
	case err != nil:
		res.Phrase = who + ": no steady measurement yet"
		return res
	}
	p := cost.Predict(w.Fleet)
	if latest, before, grew := latestWave(w, points, m.slowed && load.Known); grew {
		res.Notes = append(res.Notes, fmt.Sprintf("%s: the cost per agent grew with the number of agents (earlier waves %s, this wave %s): predicting from this wave; a larger fleet may cost more still",
			m.resource, Amount(m.resource, before.Mean), Amount(m.resource, latest.PerAgent.Mean)))
		p = latest
	}
	if f := scale(load.Fleet); f != 1 {
		p.Total.Mean *= f
		p.Total.SE *= f
	}
	res.Cost, res.Prediction = &cost, &p
	need := fmt.Sprintf("%d agents would need %s", w.Fleet, interval(m.resource, p.Total))
	if steady.Samples == 0 {
		res.Phrase = fmt.Sprintf("%s: no steady measurement yet; earlier waves predict %s for %d agents%s", who, interval(m.resource, p.Total), w.Fleet, against(limit))
	} else if cost.HasOld {
		res.Phrase = fmt.Sprintf("%s (new version) use %s each (the old version %s each); %s%s", who,
			Amount(m.resource, cost.NewPerAgent), Amount(m.resource, cost.OldPerAgent), need, against(limit))
	} else {
		res.Phrase = fmt.Sprintf("%s; %s%s", use, need, against(limit))
	}
	if f := scale(load.Fleet); f > 1.05 {
		res.Notes = append(res.Notes, fmt.Sprintf("%s: every request would take %.1f× as long with the fleet's CPU at %.0f%% of capacity", m.resource, f, 100*load.Fleet))
	}
	if !limit.Known() {
		return res
	}
	enough := steady.Samples >= w.Timing.MinSteadySamples
	halted := len(res.Halts)
	over := fmt.Sprintf("%s: %s, over the budget of %s", m.resource, need, Amount(m.resource, limit.Value))
	switch {
	case res.Bound && p.Total.High() > limit.Value:
		if quietDuration(w) >= w.Timing.MaxQuiet {
			res.Halts = append(res.Halts, over+fmt.Sprintf(" even if each agent polled only every %v", round(quietDuration(w))))
		} else {
			res.Holds = append(res.Holds, fmt.Sprintf("no request since start-up: %s: an agent that polls every %v or more would need at most %s for the fleet, over the budget of %s; soaking until it fits or a request shows",
				m.resource, round(quietDuration(w)), Amount(m.resource, p.Total.High()), Amount(m.resource, limit.Value)))
		}
	case res.Bound:
	case steady.Samples >= 2 && p.Total.Low() > limit.Value:
		res.Halts = append(res.Halts, over)
	case w.Soaked() && enough && p.Total.Mean > limit.Value:
		res.Halts = append(res.Halts, over)
	case w.Soaked() && enough && p.Total.High() > limit.Value:
		if w.Exhausted() {
			res.Halts = append(res.Halts, over+fmt.Sprintf("; still uncertain after %v", round(w.Timing.MaxSoak)))
		} else {
			res.Holds = append(res.Holds, fmt.Sprintf("%s: %s: the interval straddles the budget of %s, soaking longer", m.resource, need, Amount(m.resource, limit.Value)))
		}
	}
	if unseparated && len(res.Halts) > halted && !w.Exhausted() {
		res.Holds = append(res.Holds, fmt.Sprintf("%s: the old and new versions' costs cannot be told apart and charging all to the new one is over the budget; %v",
			m.resource, predict.ErrCannotSeparate))
		res.Halts = res.Halts[:halted]
	}
	burstPeak := res.Measurement.BurstPeakPerAgent
	for _, r := range w.History {
		burstPeak = math.Max(burstPeak, r.Resources[m.resource].BurstPeakPerAgent)
	}
	room := limit.Value / scale(load.Now)
	res.MaxNextWave = cost.MaxNextWave(w.Agents.Old, w.Agents.Desired, burstPeak/scale(load.Now), room, w.Fleet-w.Agents.Desired)
	return res
}

// chargedToNew attributes each point's whole demand to its new agents.
func chargedToNew(pts []predict.Point) []predict.Point {
	out := make([]predict.Point, 0, len(pts))
	for _, p := range pts {
		if p.New > 0 {
			out = append(out, predict.Point{New: p.New, Demand: p.Demand})
		}
	}
	return out
}

// points are the earlier waves' steady demands for a resource, rescaled to an idle server when
// slowed.
func points(history []Record, r Resource, slowed bool) []predict.Point {
	var out []predict.Point
	for _, rec := range history {
		m, ok := rec.Resources[r]
		if !ok || m.Steady.Samples == 0 {
			continue
		}
		d := m.Steady
		if slowed {
			f := predict.Slowdown(rec.Utilization)
			d.Mean, d.SE = d.Mean/f, d.SE/f
		}
		out = append(out, predict.Point{Old: rec.Old, New: rec.New, Demand: d})
	}
	return out
}

// latestWave predicts the fleet from this wave alone, and says whether its cost per new agent
// is above what the earlier waves showed. A fit over waves of growing size is dominated by the
// small, precise early waves; when a later wave costs more per agent, the fit under-predicts
// and this wave is the better floor. Any rise counts, significant or not: in the 200-node lab a
// pod-listing agent measured 0.015 seats per agent at 2 agents and 0.22 at 50, with samples so
// noisy that the intervals overlapped, and the fit said the fleet needed 3.3 seats while 50
// agents already used 11.
func latestWave(w Wave, pts []predict.Point, slowed bool) (predict.Prediction, predict.Estimate, bool) {
	if len(pts) < 2 || w.Agents.Desired == 0 {
		return predict.Prediction{}, predict.Estimate{}, false
	}
	this := pts[len(pts)-1]
	prior, err := predict.FitCost(pts[:len(pts)-1])
	if err != nil {
		return predict.Prediction{}, predict.Estimate{}, false
	}
	n, old := float64(this.New), float64(this.Old)
	perAgent := (this.Demand.Mean - prior.OldPerAgent*old) / n
	se := math.Sqrt(this.Demand.SE*this.Demand.SE+old*old*prior.VarOld) / n
	before := predict.Estimate{Mean: prior.NewPerAgent, SE: math.Sqrt(prior.VarNew)}
	latest := predict.Estimate{Mean: perAgent, SE: se, Samples: this.Demand.Samples}
	if latest.Mean <= before.Mean {
		return predict.Prediction{}, before, false
	}
	fleet := float64(w.Fleet)
	return predict.Prediction{Agents: w.Fleet, PerAgent: latest,
		Total: predict.Estimate{Mean: perAgent * fleet, SE: se * fleet, Samples: this.Demand.Samples}}, before, true
}

// quietDuration is how long the steady window has run.
func quietDuration(w Wave) time.Duration {
	d, _ := w.quiet()
	return d
}

// against is the limit in words: " of the API servers' 2 — budget 0.50 (25%)".
func against(l Limit) string {
	if !l.Known() {
		return ""
	}
	if l.headroomBound() {
		return fmt.Sprintf(" of the API servers' %s — budget %s (%g%%, less what they already use: %s)",
			capacity(l.Resource, l.Capacity), Amount(l.Resource, l.Value), l.Share, Amount(l.Resource, l.Used))
	}
	return fmt.Sprintf(" of the API servers' %s — budget %s (%g%%)", capacity(l.Resource, l.Capacity), Amount(l.Resource, l.Value), l.Share)
}

// blind says why a resource cannot be gated.
func blind(l Limit) string {
	switch {
	case l.Share <= 0:
		return fmt.Sprintf("%s is not gated (no budget)", l.Resource)
	case l.Resource == CPU:
		return "the API servers' CPU capacity is not visible (no go_sched_gomaxprocs_threads): pass --apiserver-cpus to gate on CPU"
	case l.Resource == Memory:
		return "the API servers' memory limit is not visible (no GOMEMLIMIT): pass --apiserver-memory to gate on memory"
	}
	return fmt.Sprintf("the API servers' %s capacity is not visible", l.Resource)
}

// servers is what the servers used of a resource over the wave, in words: "the API servers use
// 0.120 cores before any agent runs".
func servers(w Wave, r Resource) string {
	var sum, seconds float64
	for _, iv := range w.Intervals {
		v, known := iv.ServerCPU, iv.CPUKnown
		switch r {
		case Memory:
			v, known = iv.ServerMemory, iv.MemoryKnown
		case Seats:
			v, known = iv.SeatSeconds, true
		}
		if known {
			sum += v * iv.Span.Seconds()
			seconds += iv.Span.Seconds()
		}
	}
	if seconds == 0 {
		return "the API servers' " + string(r) + " is not visible yet"
	}
	if r == Seats {
		return "no agent runs yet"
	}
	return fmt.Sprintf("the API servers use %s before any agent runs", Amount(r, sum/seconds))
}
