package check

import (
	"fmt"
	"maps"
	"math"
	"slices"
)

// busiest holds the replica the agents load most to its own share, not only the replicas' sum.
// Behind a load balancer that spreads connections, each agent's requests go to one replica, so
// with N agents on R replicas the busiest gets about 1/R of the fleet plus its binomial spread:
// 1/R + 1.96·√((1/R)(1 − 1/R)/N). Measured, a replica whose CPU already runs above its ceiling in
// the steady window halts whatever the sum says.
func busiest(w Wave, cpu Result) Result {
	l := w.Limits[CPU]
	_, steady := w.split()
	type replica struct{ cpu, capacity, lane, seconds float64 }
	byName := map[string]*replica{}
	for _, iv := range steady {
		for _, r := range iv.Replicas {
			x := byName[r.Name]
			if x == nil {
				x = &replica{}
				byName[r.Name] = x
			}
			s := iv.Span.Seconds()
			x.cpu, x.capacity, x.lane, x.seconds = x.cpu+r.CPU*s, x.capacity+r.Capacity*s, x.lane+r.LaneCPU*s, x.seconds+s
		}
	}
	if len(byName) < 2 || !l.Known() {
		return cpu
	}
	n := float64(len(byName))
	share := 1/n + 1.96*math.Sqrt((1/n)*(1-1/n)/float64(w.Fleet))
	var laneTotal float64
	for _, x := range byName {
		laneTotal += x.lane / x.seconds
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		x := byName[name]
		used, cores, lane := x.cpu/x.seconds, x.capacity/x.seconds, x.lane/x.seconds
		if cores <= 0 {
			continue
		}
		if ceiling := Ceilings[CPU]; used > ceiling*cores {
			cpu.Halts = append(cpu.Halts, fmt.Sprintf("cpu: API server %s burns %s of its %s, above the %.0f%% ceiling",
				name, Amount(CPU, used), capacity(CPU, cores), 100*ceiling))
		}
		if laneTotal > 0 && lane/laneTotal > share {
			cpu.Notes = append(cpu.Notes, fmt.Sprintf("cpu: API server %s carries %.0f%% of the agents' load (an even spread over %d would be %.0f%%)",
				name, 100*lane/laneTotal, len(byName), 100/n))
		}
		if cpu.Prediction == nil || len(cpu.Halts) > 0 || !w.Soaked() {
			continue // one halt says it: a replica over, or the sum's own
		}
		limit := Limit{Resource: CPU, Share: l.Share, Capacity: cores}.WithUsed(used - lane)
		need := cpu.Prediction.Total.Mean * share
		if need > limit.Value {
			cpu.Halts = append(cpu.Halts, fmt.Sprintf("cpu: the busiest API server would carry about %.0f%% of %d agents, %s of %s's %s, over its budget of %s",
				100*share, w.Fleet, Amount(CPU, need), name, capacity(CPU, cores), Amount(CPU, limit.Value)))
		}
	}
	return cpu
}
