package plan

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// DefaultWaves is used when --waves is not given.
const DefaultWaves = "1%,5%,25%,100%"

// Wave is one item of --waves: a cumulative share of the eligible nodes, as a percentage or
// a node count. "5%" and "10" both mean "after this wave, this many nodes run the new pods".
type Wave struct {
	Text      string  // as the user wrote it, for messages
	Percent   float64 // set when IsPercent
	Count     int     // set when !IsPercent
	IsPercent bool
}

// ParseWaves reads a comma-separated list such as "1%,5%,25%,100%" or "2,10,50,100%".
// Percentages are in (0,100], counts are whole numbers ≥ 1, each kind strictly increases, and
// the list ends with 100%. Errors name the offending item and its position.
func ParseWaves(s string) ([]Wave, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("waves: empty list; want something like %q", DefaultWaves)
	}
	items := strings.Split(s, ",")
	waves := make([]Wave, 0, len(items))
	var lastPercent float64
	lastCount := 0
	for i, raw := range items {
		item := strings.TrimSpace(raw)
		pos := fmt.Sprintf("waves: item %d (%q)", i+1, item)
		if item == "" {
			return nil, fmt.Errorf("waves: item %d is empty", i+1)
		}
		w := Wave{Text: item}
		if num, ok := strings.CutSuffix(item, "%"); ok {
			p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || math.IsNaN(p) || math.IsInf(p, 0) {
				return nil, fmt.Errorf("%s: not a percentage", pos)
			}
			if p <= 0 || p > 100 {
				return nil, fmt.Errorf("%s: a percentage must be above 0%% and at most 100%%", pos)
			}
			if p <= lastPercent {
				return nil, fmt.Errorf("%s: waves must strictly increase, but it follows %g%%", pos, lastPercent)
			}
			w.Percent, w.IsPercent, lastPercent = p, true, p
		} else {
			n, err := strconv.Atoi(item)
			if err != nil {
				return nil, fmt.Errorf("%s: not a node count or a percentage", pos)
			}
			if n < 1 {
				return nil, fmt.Errorf("%s: a node count must be at least 1", pos)
			}
			if n <= lastCount {
				return nil, fmt.Errorf("%s: waves must strictly increase, but it follows %d nodes", pos, lastCount)
			}
			w.Count, lastCount = n, n
		}
		waves = append(waves, w)
	}
	if last := waves[len(waves)-1]; !last.IsPercent || last.Percent != 100 {
		return nil, fmt.Errorf("waves: the last item is %q; the list must end with 100%%", last.Text)
	}
	return waves, nil
}

// Step is a wave resolved against the fleet: after it, Target nodes run the new pods.
type Step struct {
	Text   string // the wave(s) it came from, e.g. "5%" or "1%+5%" when both gave one node
	Target int
}

// Resolve turns waves into cumulative node targets for a fleet of eligible nodes.
// A percentage rounds up (1% of 20 nodes is 1 node: a wave is never empty); a count above the
// fleet is capped at the fleet. Waves that land on the same target merge into one step, so a
// small fleet takes fewer steps. A wave resolving below its predecessor is an error: the list
// mixes counts and percentages that disagree for this fleet.
func Resolve(waves []Wave, eligible int) ([]Step, error) {
	if eligible <= 0 {
		return nil, fmt.Errorf("no eligible nodes: the DaemonSet's node selector, affinity and tolerations match none")
	}
	var steps []Step
	prev, prevText := 0, ""
	for _, w := range waves {
		target := min(w.Count, eligible)
		if w.IsPercent {
			// The epsilon keeps 10% of 200 at 20 despite binary floating point.
			target = int(math.Ceil(w.Percent*float64(eligible)/100 - 1e-9))
			target = max(1, min(target, eligible))
		}
		switch {
		case target < prev:
			return nil, fmt.Errorf("waves: %q is %d of %d eligible nodes, fewer than the %d of the wave before it (%q)",
				w.Text, target, eligible, prev, prevText)
		case target == prev:
			steps[len(steps)-1].Text += "+" + w.Text
		default:
			steps = append(steps, Step{Text: w.Text, Target: target})
		}
		prev, prevText = target, w.Text
	}
	return steps, nil
}
