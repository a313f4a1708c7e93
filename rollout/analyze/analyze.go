package analyze

import (
	"fmt"
	"strings"

	"github.com/bulkhead-dev/bulkhead/rollout/check"
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
	// Headline is the one sentence to print, e.g. "wave 1: 2 agents use 0.050 cores; 200 agents
	// would need 5.0 cores (95%: 4.1–5.9) of the API servers' 2 cores — budget 0.50 cores (25%)
	// — halting".
	Headline string
	// Reasons are every cause of the verdict: each halt condition, or what a hold waits for.
	Reasons []string
	// Kind classifies Reasons[0] for machines (a metrics label, a log filter); KindNone for a
	// proceed.
	Kind ReasonKind
	// Notes are facts worth showing that did not decide anything.
	Notes []string
	// Checks are every check's result: the resources (CPU, memory, seats) first, each with its
	// measurement, prediction and limit, then the guards.
	Checks []check.Result
	// MaxNextWave is the most agents the next wave may switch at once with its start-up burst
	// within every budget; -1 when unknown.
	MaxNextWave int
}

// ReasonKind is the kind of a decision's first reason: a few stable words, never the sentence.
type ReasonKind string

const (
	// KindNone: a proceed, nothing holds it.
	KindNone ReasonKind = "none"
	// KindAgents: the wave's agents are not all Ready (yet, or in time).
	KindAgents ReasonKind = "agents"
	// KindSoaking: the soak is not done.
	KindSoaking ReasonKind = "soaking"
	// KindSteadyData: too few steady samples, or no baseline to tell versions apart.
	KindSteadyData ReasonKind = "steady-data"
	// KindQuiet: the agents made no request since start-up, and the bound on a slow poller's
	// cost does not fit.
	KindQuiet ReasonKind = "quiet"
	// KindBudget: a resource's prediction (or measurement) is over, or straddles, its budget.
	KindBudget ReasonKind = "budget"
	// KindSLO: an API server SLI is above its SLO.
	KindSLO ReasonKind = "slo"
	// KindCollateral: another flow is rejected or waits more than before the rollout.
	KindCollateral ReasonKind = "collateral"
	// KindBlind: no resource of the API servers can be judged.
	KindBlind ReasonKind = "blind"
	// KindInvalid: the observations make no sense.
	KindInvalid ReasonKind = "invalid"
)

// kindOf classifies the reasons a check gave, from its structured result (never its words).
func kindOf(c check.Result, w check.Wave) ReasonKind {
	switch c.Check {
	case "slo":
		return KindSLO
	case "collateral":
		return KindCollateral
	case "readiness":
		switch {
		case !w.AllReady():
			return KindAgents
		case !w.Soaked():
			return KindSoaking
		}
		return KindSteadyData
	}
	switch {
	case len(c.Halts) > 0:
		return KindBudget
	case c.Bound:
		return KindQuiet
	case c.Prediction == nil:
		return KindSteadyData
	}
	return KindBudget
}

// Resource is the result of one resource check, if it ran.
func (d Decision) Resource(r check.Resource) (check.Result, bool) {
	for _, c := range d.Checks {
		if c.Check == string(r) {
			return c, true
		}
	}
	return check.Result{}, false
}

// Analyze decides a wave. Halts come first and may fire at any moment of the soak (a breach
// does not wait for the window to end); a proceed needs the whole soak, enough steady samples
// and, for every resource that can be seen, a prediction whose 95% interval fits its budget.
func Analyze(o Observations) Decision {
	d := Decision{MaxNextWave: -1}
	w := o.Wave
	w.Timing = w.Timing.WithDefaults(w.Soak)
	if err := w.Validate(); err != nil {
		d.Verdict, d.Kind = Hold, KindInvalid
		d.Reasons = []string{"cannot analyse: " + err.Error()}
		d.Headline = fmt.Sprintf("wave %d: cannot analyse (%v) — holding", w.Number, err)
		return d
	}
	g := o.Guards.WithDefaults()
	d.Notes = append(d.Notes, o.Notes...)
	resources := check.JudgeResources(w)
	d.Checks = append(resources, check.SLOs(o.SLIs, g), check.Collateral(o.Others, g), check.Readiness(w))

	var halts, holds, costHalts []string
	var blind []string
	haltKind, holdKind := KindNone, KindNone
	for _, c := range d.Checks {
		if len(halts) == 0 && len(c.Halts) > 0 {
			haltKind = kindOf(c, w)
		}
		if len(holds) == 0 && len(c.Holds) > 0 {
			holdKind = kindOf(c, w)
		}
		halts = append(halts, c.Halts...)
		holds = append(holds, c.Holds...)
		d.Notes = append(d.Notes, c.Notes...)
		if c.Blind != "" {
			blind = append(blind, c.Blind)
		}
		if c.MaxNextWave >= 0 && (d.MaxNextWave < 0 || c.MaxNextWave < d.MaxNextWave) {
			d.MaxNextWave = c.MaxNextWave
		}
	}
	for _, c := range resources {
		costHalts = append(costHalts, c.Halts...)
	}
	if len(blind) == len(resources) {
		// Nothing can be gated: never treat unknown capacity as infinite.
		if len(halts) == 0 {
			haltKind = KindBlind
		}
		halts = append(halts, "no resource of the API servers can be judged: "+strings.Join(blind, "; "))
	}
	if m := resources[len(resources)-1].Measurement; m.Throttled {
		d.Notes = append(d.Notes, "the lane queued or rejected the agents' requests; their demand counts what was held back")
	}
	switch {
	case len(halts) > 0:
		d.Verdict, d.Reasons, d.Kind = Halt, halts, haltKind
	case len(holds) > 0:
		d.Verdict, d.Reasons, d.Kind = Hold, holds, holdKind
	default:
		d.Verdict, d.Kind = Proceed, KindNone
	}
	lead := leading(resources)
	costExplains := len(costHalts) > 0 && len(halts) == len(costHalts) && len(lead.Halts) > 0
	d.Headline = headline(w, d, lead, costExplains)
	return d
}

// leading is the resource the headline speaks of: the first that halts, in the order CPU,
// memory, seats (the seats' and memory's predictions follow from the CPU's); else the one
// closest to, or furthest over, its budget.
func leading(resources []check.Result) check.Result {
	for _, r := range resources {
		if len(r.Halts) > 0 {
			return r
		}
	}
	lead := resources[0]
	for _, r := range resources {
		if r.Over() > lead.Over() {
			lead = r
		}
	}
	return lead
}

// headline is the one sentence a human reads first. When the verdict has other causes than
// the resource the sentence shows, the first is appended.
func headline(w check.Wave, d Decision, lead check.Result, costExplains bool) string {
	verb := map[Verdict]string{Proceed: "proceeding", Hold: "holding", Halt: "halting"}[d.Verdict]
	var b strings.Builder
	if w.Number == 0 {
		b.WriteString("baseline: ")
	} else {
		fmt.Fprintf(&b, "wave %d: ", w.Number)
	}
	phrase := lead.Phrase
	if phrase == "" {
		phrase = fmt.Sprintf("%d agents: no steady measurement yet", w.Agents.Desired)
	}
	fmt.Fprintf(&b, "%s — %s", phrase, verb)
	if d.Verdict != Proceed && len(d.Reasons) > 0 && !costExplains {
		fmt.Fprintf(&b, " (%s)", d.Reasons[0])
	}
	return b.String()
}

// Summary is the decision's measurement per resource, a line each, for the progress shown after
// every decided wave: what the wave used, what the fleet would need, and the budget.
func (d Decision) Summary() []string {
	var out []string
	for _, r := range check.Resources {
		c, ok := d.Resource(r)
		if !ok {
			continue
		}
		line := fmt.Sprintf("  %-6s measured %s", r, check.Amount(r, c.Measurement.Steady.Mean))
		if c.Bound {
			line += " (an upper bound: no request seen in the steady window)"
		}
		if p := c.Prediction; p != nil {
			line += fmt.Sprintf("; %d agents %s", p.Agents, check.Range(r, p.Total.Mean, p.Total.Low(), p.Total.High()))
		}
		if c.Limit.Known() {
			line += "; budget " + c.Limit.String()
		} else {
			line += "; not gated: " + c.Blind
		}
		out = append(out, line)
	}
	return out
}
