package check

import (
	"fmt"
	"math"
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/predict"
)

// Amount prints a quantity of a resource with the precision it deserves and its unit.
func Amount(r Resource, v float64) string {
	switch r {
	case CPU:
		return number(v, 3) + " cores"
	case Memory:
		return bytes(v)
	}
	return number(v, 2) + " seats"
}

// capacity prints a capacity: "2 cores", "768 MiB", "600 seats".
func capacity(r Resource, v float64) string {
	switch r {
	case CPU:
		return number(v, 2) + " cores"
	case Memory:
		return bytes(v)
	}
	return number(v, 2) + " seats"
}

// interval prints an estimate with its 95% interval: "5.0 cores (95%: 4.1–5.9)".
func interval(r Resource, e predict.Estimate) string { return Range(r, e.Mean, e.Low(), e.High()) }

// Range prints a value with its 95% interval: "5.0 cores (95%: 4.1–5.9)".
func Range(r Resource, mean, low, high float64) string {
	return fmt.Sprintf("%s (95%%: %s–%s)", Amount(r, mean), bare(r, low), bare(r, high))
}

// bare is amount without its unit (memory keeps it: MiB and GiB differ).
func bare(r Resource, v float64) string {
	switch r {
	case CPU:
		return number(v, 3)
	case Memory:
		return bytes(v)
	}
	return number(v, 2)
}

// number keeps about digits significant digits for small values and none after the point for
// large ones: 0.012, 0.50, 5.0, 180.
func number(v float64, digits int) string {
	a := math.Abs(v)
	switch {
	case a < 0.00005:
		return "0"
	case a >= 9.95:
		return fmt.Sprintf("%.0f", v)
	}
	decimals := digits - 1 - int(math.Floor(math.Log10(a)))
	return fmt.Sprintf("%.*f", max(1, min(decimals, 4)), v)
}

func bytes(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1<<30:
		return fmt.Sprintf("%.1f GiB", v/(1<<30))
	case a >= 1<<20:
		return fmt.Sprintf("%.0f MiB", v/(1<<20))
	default:
		return fmt.Sprintf("%.0f KiB", v/(1<<10))
	}
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// String is the limit in words: "0.50 cores (25% of the API servers' 2 cores)", or why the
// resource cannot be gated.
func (l Limit) String() string {
	if !l.Known() {
		return blind(l)
	}
	s := fmt.Sprintf("%s (%g%% of the API servers' %s", Amount(l.Resource, l.Value), l.Share, capacity(l.Resource, l.Capacity))
	if l.From != "" && l.From != "APF" {
		s += ", from " + l.From
	}
	if l.headroomBound() {
		s += fmt.Sprintf(", less what they already use: %s", Amount(l.Resource, l.Used))
	}
	return s + ")"
}
