package analyze

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/predict"
)

// Verdict is what the rollout does next.
type Verdict string

const (
	// Proceed: this wave is good; start the next one (or finish).
	Proceed Verdict = "proceed"
	// Hold: keep soaking; the data does not support a decision yet.
	Hold Verdict = "hold"
	// Halt: stop and roll back now.
	Halt Verdict = "halt"
)

// Decision is Analyze's answer, with the reasons a human needs to trust it.
type Decision struct {
	Verdict Verdict
	// Headline is the one sentence to print, e.g. "wave 1: 2 agents use 1.8 seats steady;
	// 200 agents would need 180 seats (95%: 170–190) against a budget of 60 — halting".
	Headline string
	// Reasons are every cause of the verdict: each halt condition, or what a hold waits for.
	Reasons []string
	// Notes are facts worth showing that did not decide anything.
	Notes []string

	Measurement predict.Measurement
	// Cost and Prediction are set once a cost could be fitted.
	Cost       *predict.Cost
	Prediction *predict.Prediction
	// MaxNextWave is the most agents the next wave may switch at once with its start-up
	// burst in budget; -1 when unknown.
	MaxNextWave int
}

// Analyze decides a wave. Halts come first and may fire at any moment of the soak (a breach
// does not wait for the window to end); a proceed needs the whole soak, enough steady samples
// and a prediction whose 95% interval fits the budget.
func Analyze(o Observations) Decision {
	d := Decision{MaxNextWave: -1}
	if err := o.validate(); err != nil {
		d.Verdict = Hold
		d.Reasons = []string{"cannot analyse: " + err.Error()}
		d.Headline = fmt.Sprintf("wave %d: cannot analyse (%v) — holding", o.Wave, err)
		return d
	}
	l := o.Limits.withDefaults(o.Soak)
	var halts, holds []string

	halts = append(halts, sloBreaches(o.SLIs, l)...)
	halts = append(halts, collateralDamage(o.Others, l)...)

	allReady := o.Agents.Ready == o.Agents.Desired
	if !allReady {
		msg := fmt.Sprintf("%d of %d new agents Ready after %v", o.Agents.Ready, o.Agents.Desired, round(o.Elapsed))
		if o.Elapsed >= l.ReadyTimeout {
			halts = append(halts, msg+fmt.Sprintf(", past the %v allowed", round(l.ReadyTimeout)))
		} else {
			holds = append(holds, "waiting for agents: "+msg)
		}
	}

	// The steady window opens once every agent is Ready and has settled; the baseline has no
	// start-up and is steady from the beginning.
	steadyFrom := time.Duration(math.MaxInt64)
	readyAt := o.Agents.ReadyAt
	if o.Agents.Started == 0 {
		steadyFrom, readyAt = 0, 0
	} else if allReady {
		steadyFrom = o.Agents.ReadyAt + l.Settle
	}
	d.Measurement = predict.Measure(o.Lane, steadyFrom, o.Agents.Started)
	m := d.Measurement
	if m.Throttled {
		d.Notes = append(d.Notes, "the lane queued or rejected the agents' requests; their demand counts what was held back")
	}
	if m.LowerBound {
		d.Notes = append(d.Notes, "in some interval the lane dispatched nothing: demand there is only a lower bound")
	}

	soaked := allReady && o.Elapsed >= readyAt+o.Soak
	exhausted := allReady && o.Elapsed >= readyAt+l.MaxSoak
	enough := m.Steady.Samples >= l.MinSteadySamples

	points := append([]predict.Point(nil), o.History...)
	if m.Steady.Samples > 0 {
		points = append(points, predict.Point{Old: o.Agents.Old, New: o.Agents.Desired, Seats: m.Steady})
	}
	budget := o.BudgetSeats
	var verdictFromCost []string // halts that rest on the measured cost, which the headline shows
	if o.Wave == 0 {
		// Baseline: the current version alone must already fit the budget.
		if m.Steady.Samples > 0 {
			d.Notes = append(d.Notes, fmt.Sprintf("baseline: %d agents of the current version use %s seats steady",
				o.Agents.Old, seats(m.Steady.Mean)))
			if (m.Steady.Samples >= 2 && m.Steady.Low() > budget) || (soaked && enough && m.Steady.Mean > budget) {
				verdictFromCost = append(verdictFromCost, fmt.Sprintf("the current version alone needs %s seats, above the budget of %s",
					seats(m.Steady.Mean), seats(budget)))
			}
		}
	} else if cost, err := predict.FitCost(points); err == nil {
		p := cost.Predict(o.FleetSize)
		if latest, before, grew := latestWave(o, m); grew {
			d.Notes = append(d.Notes, fmt.Sprintf("the cost per agent grew with the number of agents (earlier waves %s, this wave %s): predicting from this wave; a larger fleet may cost more still",
				seats(before.Mean), seats(latest.PerAgent.Mean)))
			p = latest
		}
		d.Cost, d.Prediction = &cost, &p
		burst := math.Max(m.BurstPeakPerAgent, o.PriorBurstPerAgent)
		d.MaxNextWave = cost.MaxNextWave(o.Agents.Old, o.Agents.Desired, burst, budget, o.FleetSize-o.Agents.Desired)
		need := fmt.Sprintf("%d agents would need %s seats (95%%: %s–%s) against a budget of %s",
			o.FleetSize, seats(p.Seats.Mean), seats(p.Seats.Low()), seats(p.Seats.High()), seats(budget))
		switch {
		case m.Steady.Samples >= 2 && p.Seats.Low() > budget:
			verdictFromCost = append(verdictFromCost, need)
		case soaked && enough && p.Seats.Mean > budget:
			verdictFromCost = append(verdictFromCost, need)
		case soaked && enough && p.Seats.High() > budget:
			if exhausted {
				verdictFromCost = append(verdictFromCost, need+fmt.Sprintf("; still uncertain after %v", round(l.MaxSoak)))
			} else {
				holds = append(holds, need+": the interval straddles the budget, soaking longer")
			}
		}
	} else if errors.Is(err, predict.ErrCannotSeparate) {
		holds = append(holds, err.Error())
	}
	halts = append(halts, verdictFromCost...)
	costExplains := len(verdictFromCost) > 0 && len(halts) == len(verdictFromCost)

	if allReady && !soaked {
		holds = append(holds, fmt.Sprintf("soaking: %v of %v", round(o.Elapsed-readyAt), round(o.Soak)))
	}
	if allReady && soaked && !enough {
		msg := fmt.Sprintf("%d steady samples, want %d", m.Steady.Samples, l.MinSteadySamples)
		if exhausted {
			halts = append(halts, "no usable steady-state measurement: "+msg+fmt.Sprintf(" after %v", round(l.MaxSoak)))
		} else {
			holds = append(holds, "too little steady data: "+msg)
		}
	}

	switch {
	case len(halts) > 0:
		d.Verdict, d.Reasons = Halt, halts
	case len(holds) > 0:
		d.Verdict, d.Reasons = Hold, holds
	default:
		d.Verdict = Proceed
	}
	d.Headline = headline(o, d, costExplains)
	return d
}

// latestWave predicts the fleet from this wave alone, and says whether its cost per new agent is
// above what the earlier waves showed. A fit over waves of growing size is dominated by the
// small, precise early waves; when a later wave costs more per agent — requests slow down as the
// server gets busier — the fit under-predicts, and this wave is the better floor. A request never
// gets cheaper because more agents send it, so any rise counts, significant or not: in the
// 200-node lab a pod-listing agent measured 0.015 seats per agent at 2 agents and 0.22 at 50,
// with 50 noisy samples whose interval still overlapped the early waves', and the fit said the
// fleet needed 3.3 seats while 50 agents already used 11.
func latestWave(o Observations, m predict.Measurement) (predict.Prediction, predict.Estimate, bool) {
	if o.Agents.Desired == 0 || m.Steady.Samples == 0 {
		return predict.Prediction{}, predict.Estimate{}, false
	}
	prior, err := predict.FitCost(o.History)
	if err != nil {
		return predict.Prediction{}, predict.Estimate{}, false
	}
	n, old := float64(o.Agents.Desired), float64(o.Agents.Old)
	perAgent := (m.Steady.Mean - prior.OldPerAgent*old) / n
	se := math.Sqrt(m.Steady.SE*m.Steady.SE+old*old*prior.VarOld) / n
	before := predict.Estimate{Mean: prior.NewPerAgent, SE: math.Sqrt(prior.VarNew)}
	latest := predict.Estimate{Mean: perAgent, SE: se, Samples: m.Steady.Samples}
	if latest.Mean <= before.Mean {
		return predict.Prediction{}, before, false
	}
	fleet := float64(o.FleetSize)
	return predict.Prediction{Agents: o.FleetSize, PerAgent: latest,
		Seats: predict.Estimate{Mean: perAgent * fleet, SE: se * fleet, Samples: m.Steady.Samples}}, before, true
}

func sloBreaches(slis []SLI, l Limits) []string {
	var out []string
	for _, s := range slis {
		if s.Requests >= l.MinSLIRequests && s.SLO > 0 && s.P99 > s.SLO {
			out = append(out, fmt.Sprintf("SLO breached: %s %s p99 %v > %v (%d requests)",
				strings.ToUpper(s.Verb), s.Scope, round(s.P99), round(s.SLO), s.Requests))
		}
	}
	return out
}

func collateralDamage(flows []Flow, l Limits) []string {
	var out []string
	for _, f := range flows {
		name := fmt.Sprintf("flow schema %s (priority level %s)", f.FlowSchema, f.PriorityLevel)
		if f.RejectedPerSec > f.BaselineRejectedPerSec+l.OtherRejectionsPerSec {
			out = append(out, fmt.Sprintf("collateral damage: %s is being rejected, %.2f/s (before the rollout: %.2f/s)",
				name, f.RejectedPerSec, f.BaselineRejectedPerSec))
		}
		if f.WaitP99 > f.BaselineWaitP99+l.OtherWaitIncrease {
			out = append(out, fmt.Sprintf("collateral damage: %s waits %v at p99 in APF queues (before the rollout: %v)",
				name, round(f.WaitP99), round(f.BaselineWaitP99)))
		}
	}
	return out
}

// headline is the one sentence a human reads first.
// When the verdict has other causes than the cost the sentence shows, the first is appended.
func headline(o Observations, d Decision, costExplains bool) string {
	verb := map[Verdict]string{Proceed: "proceeding", Hold: "holding", Halt: "halting"}[d.Verdict]
	m := d.Measurement
	var b strings.Builder
	if o.Wave == 0 {
		fmt.Fprintf(&b, "baseline: %d agents", o.Agents.Old)
	} else {
		fmt.Fprintf(&b, "wave %d: %d agents", o.Wave, o.Agents.Desired)
		if o.Agents.Old > 0 {
			b.WriteString(" (new version)")
		}
	}
	switch {
	case d.Prediction != nil && m.Steady.Samples == 0:
		fmt.Fprintf(&b, ": no steady measurement yet; earlier waves predict %s seats (95%%: %s–%s) for %d agents against a budget of %s",
			seats(d.Prediction.Seats.Mean), seats(d.Prediction.Seats.Low()), seats(d.Prediction.Seats.High()), o.FleetSize, seats(o.BudgetSeats))
	case d.Prediction != nil && d.Cost.HasOld:
		fmt.Fprintf(&b, " use %s seats each steady (the old version %s each); %d agents would need %s seats (95%%: %s–%s) against a budget of %s",
			seats(d.Cost.NewPerAgent), seats(d.Cost.OldPerAgent), o.FleetSize, seats(d.Prediction.Seats.Mean),
			seats(d.Prediction.Seats.Low()), seats(d.Prediction.Seats.High()), seats(o.BudgetSeats))
	case d.Prediction != nil:
		fmt.Fprintf(&b, " use %s seats steady; %d agents would need %s seats (95%%: %s–%s) against a budget of %s",
			seats(m.Steady.Mean), o.FleetSize, seats(d.Prediction.Seats.Mean),
			seats(d.Prediction.Seats.Low()), seats(d.Prediction.Seats.High()), seats(o.BudgetSeats))
	case m.Steady.Samples > 0:
		fmt.Fprintf(&b, " use %s seats steady against a budget of %s", seats(m.Steady.Mean), seats(o.BudgetSeats))
	default:
		b.WriteString(": no steady measurement yet")
	}
	fmt.Fprintf(&b, " — %s", verb)
	if d.Verdict != Proceed && len(d.Reasons) > 0 && !costExplains {
		fmt.Fprintf(&b, " (%s)", d.Reasons[0])
	}
	return b.String()
}

// seats prints a seat count with the precision it deserves.
func seats(v float64) string {
	switch a := math.Abs(v); {
	case a < 0.095:
		return fmt.Sprintf("%.2f", v)
	case a < 9.95:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}
