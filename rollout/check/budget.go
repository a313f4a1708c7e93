package check

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Budget is the share of the API servers' capacity, in percent per resource, that a DaemonSet may
// use once it runs on every node. A resource whose share is 0 is not gated.
type Budget map[Resource]float64

// DefaultBudget is what a rollout gets unless told otherwise, each share with its reason:
//
//   - cpu 25%: a fleet-wide agent is one workload among many on the control plane; a quarter
//     of its CPU leaves the rest for the controllers, the scheduler, the kubelets and every
//     other client, and keeps the slowdown every request sees (1/(1 − ρ)) small.
//   - memory 25%: memory has no APF to protect it; past its limit the replica is OOM-killed,
//     and its clients' re-lists on restart are the next wave of load.
//   - seats 10%: the lane reserves these seats for the rollout's duration (lendablePercent 0),
//     so the other priority levels' shares shrink by as much; keep the reservation small.
var DefaultBudget = Budget{CPU: 25, Memory: 25, Seats: 10}

// ParseBudget reads --budget: comma-separated resource=share pairs ("cpu=25%,memory=30%",
// "seats=5"), each in (0, 100]; resources not named keep their default. A bare share ("10%")
// applies to every resource.
func ParseBudget(s string) (Budget, error) {
	b := Budget{}
	for k, v := range DefaultBudget {
		b[k] = v
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return b, nil
	}
	if !strings.Contains(s, "=") {
		v, err := parseShare(s)
		if err != nil {
			return nil, fmt.Errorf("--budget %q: %w", s, err)
		}
		for k := range b {
			b[k] = v
		}
		return b, nil
	}
	seen := map[Resource]bool{}
	for _, part := range strings.Split(s, ",") {
		name, share, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("--budget %q: %q is not resource=share (resources: cpu, memory, seats)", s, part)
		}
		r := Resource(strings.ToLower(strings.TrimSpace(name)))
		if _, known := DefaultBudget[r]; !known {
			return nil, fmt.Errorf("--budget %q: unknown resource %q (resources: cpu, memory, seats)", s, name)
		}
		if seen[r] {
			return nil, fmt.Errorf("--budget %q: %s is given twice", s, r)
		}
		seen[r] = true
		v, err := parseShare(share)
		if err != nil {
			return nil, fmt.Errorf("--budget %q: %s: %w", s, r, err)
		}
		b[r] = v
	}
	return b, nil
}

func parseShare(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%")), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a percentage such as 25%%", s)
	}
	if v <= 0 || v > 100 {
		return 0, fmt.Errorf("%q must be within (0, 100%%]", s)
	}
	return v, nil
}

// String is the budget as --budget would take it.
func (b Budget) String() string {
	var parts []string
	for _, r := range Resources {
		if v, ok := b[r]; ok {
			parts = append(parts, fmt.Sprintf("%s=%g%%", r, v))
		}
	}
	return strings.Join(parts, ",")
}

// Capacity is what the API servers have and already use, summed over replicas. A zero capacity
// is unknown, never infinite.
type Capacity struct {
	CPU, Memory, Seats float64
	// CPUFrom and MemoryFrom say where a capacity came from: "metrics" (GOMAXPROCS, GOMEMLIMIT)
	// or the flag that stated it.
	CPUFrom, MemoryFrom string
	// CPUUsed and MemoryUsed are what the servers used before the rollout (cores, resident
	// bytes): headroom is what is left.
	CPUUsed, MemoryUsed float64
}

// Ceilings are the utilisations the servers must stay below once the fleet runs, whatever the
// budget: past 80% of CPU every request is slowed about five times, and 80% of a memory limit
// leaves a garbage collector (which lets the heap grow to twice what is live) room to work.
// Seats need none: the lane reserves its own.
var Ceilings = map[Resource]float64{CPU: 0.8, Memory: 0.8}

// Limit is what the DaemonSet may use of one resource at 100% of the fleet.
type Limit struct {
	Resource Resource `json:"resource"`
	// Share is the budget (percent); Capacity the servers' total (0: unknown); Used what they
	// used before the rollout.
	Share    float64 `json:"share"`
	Capacity float64 `json:"capacity,omitempty"`
	Used     float64 `json:"used,omitempty"`
	// Value is the limit: the share of capacity, or the headroom below the ceiling when that is
	// less. Meaningless when Capacity is 0.
	Value float64 `json:"value"`
	// From says where the capacity came from.
	From string `json:"from,omitempty"`
}

// Known reports whether the limit can be judged against.
func (l Limit) Known() bool { return l.Capacity > 0 && l.Share > 0 }

// headroomBound reports whether the headroom, not the share, set the limit.
func (l Limit) headroomBound() bool {
	return l.Known() && l.Value < l.Share/100*l.Capacity-1e-12
}

// Limits turns the budget into a limit per resource.
func (b Budget) Limits(c Capacity) map[Resource]Limit {
	out := map[Resource]Limit{}
	for _, r := range Resources {
		l := Limit{Resource: r, Share: b[r]}
		switch r {
		case CPU:
			l.Capacity, l.From = c.CPU, c.CPUFrom
			l = l.WithUsed(c.CPUUsed)
		case Memory:
			l.Capacity, l.From = c.Memory, c.MemoryFrom
			l = l.WithUsed(c.MemoryUsed)
		case Seats:
			l.Capacity, l.From = c.Seats, "APF"
			l = l.WithUsed(0)
		}
		out[r] = l
	}
	return out
}

// WithUsed is the limit given what the servers already use: the share of capacity, or the
// headroom below the resource's ceiling when that is less.
func (l Limit) WithUsed(used float64) Limit {
	l.Used = used
	l.Value = l.Share / 100 * l.Capacity
	if ceiling, ok := Ceilings[l.Resource]; ok && l.Capacity > 0 {
		l.Value = math.Max(0, math.Min(l.Value, ceiling*l.Capacity-used))
	}
	return l
}
