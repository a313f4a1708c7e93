package rollout

import (
	"fmt"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Describe is `rollout status` in words.
func Describe(namespace, name string, st state.State, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "DaemonSet %s/%s, rollout %s (%s)\n", namespace, name, st.ID, st.Kind)
	switch {
	case st.Observing():
		fmt.Fprintf(&b, "mode:    observe — the DaemonSet controller rolls it out by itself; measured in level %s, never held\n", st.Lane.PriorityLevel)
	case st.Held:
		fmt.Fprintf(&b, "driver:  bulkhead controller (adopted from admission's hold), revision %s\n", st.Revision)
	}
	phase := string(st.Phase)
	if st.Paused {
		phase += ", paused"
	}
	fmt.Fprintf(&b, "phase:   %s", phase)
	switch st.Phase {
	case state.Rolling, state.Soaking:
		fmt.Fprintf(&b, " — wave %d of %d, %d of %d nodes switched (target %d)", st.Wave, len(st.Targets), st.Done, st.Eligible, st.Target())
	case state.Baseline:
		b.WriteString(" — measuring the current version before wave 1")
	}
	b.WriteByte('\n')
	if !st.Updated.IsZero() {
		fmt.Fprintf(&b, "updated: %s ago\n", now.Sub(st.Updated).Round(time.Second))
	}
	fmt.Fprintf(&b, "waves:   %s → %v nodes; soak %v\n", st.WavesSpec, st.Targets, st.Soak.Duration)
	fmt.Fprintf(&b, "budget:  %s; lane %s\n", describeLimits(st.Limits), st.Lane.PriorityLevel)
	for _, r := range st.History {
		label := fmt.Sprintf("wave %d", r.Wave)
		if r.Wave == 0 {
			label = "baseline"
		}
		var used []string
		for _, res := range check.Resources {
			if m, ok := r.Resources[res]; ok {
				used = append(used, fmt.Sprintf("%s ± %s", check.Amount(res, m.Steady.Mean), check.Amount(res, m.Steady.SE)))
			}
		}
		fmt.Fprintf(&b, "%-8s %d new + %d old agents used %s steady\n", label+":", r.New, r.Old, strings.Join(used, ", "))
	}
	if h := st.Halted; h != nil && h.Headline != "" {
		fmt.Fprintf(&b, "halted:  %s\n", h.Headline)
	}
	if h := st.WouldHalt; h != nil && h.Headline != "" {
		fmt.Fprintf(&b, "guard would have halted it: %s\n", h.Headline)
	}
	if st.Reason != "" {
		fmt.Fprintf(&b, "reason:  %s\n", st.Reason)
	}
	switch st.NextAction() {
	case state.Wait:
		b.WriteString("next:    paused; `bulkhead rollout resume` continues, `abort` rolls back\n")
	case state.None:
	default:
		fmt.Fprintf(&b, "next:    %s (if no bulkhead is running it, `bulkhead rollout resume` will)\n", st.NextAction())
	}
	return b.String()
}

// describeLimits is the budget of every resource in words.
func describeLimits(limits map[check.Resource]check.Limit) string {
	var parts []string
	for _, r := range check.Resources {
		if l, ok := limits[r]; ok {
			parts = append(parts, string(r)+": "+l.String())
		}
	}
	return strings.Join(parts, "; ")
}
