package predict

import (
	"errors"
	"fmt"
	"math"
)

// Point is one wave's steady lane demand for a resource with the agents that produced it.
type Point struct {
	Old, New int      // agents of the old and the new version running in the steady window
	Demand   Estimate // steady demand (Measurement.Steady)
}

// Cost is the fitted per-agent steady demand of each version, in the resource's unit.
type Cost struct {
	OldPerAgent, NewPerAgent float64
	// Variances and covariance of the two estimates (unit²).
	VarOld, VarNew, CovOldNew float64
	// HasOld is false for a new DaemonSet: no point has old agents, and OldPerAgent is 0.
	HasOld bool
}

// ErrCannotSeparate means every point mixes old and new agents in the same proportion, so
// their costs cannot be told apart; a baseline soak (all old, before wave 1) fixes it.
var ErrCannotSeparate = errors.New("cannot separate old-version from new-version cost: every wave has the same mix; soak a baseline (all old agents) first")

// FitCost regresses demand on agent counts across waves, demand = a·old + b·new, weighted by
// each wave's precision (1/SE²). There is no intercept: the lane matches only the DaemonSet's
// service account, so no agents means no demand. When the points disagree with the model by
// more than their errors allow (reduced χ² > 1), the variances grow by that factor: misfit
// widens the interval instead of hiding.
func FitCost(points []Point) (Cost, error) {
	var soo, snn, son, soy, sny float64
	hasOld, hasNew := false, false
	for _, p := range points {
		if p.Demand.SE <= 0 || math.IsInf(p.Demand.SE, 0) || math.IsNaN(p.Demand.Mean) {
			continue // a point without a usable error carries no weight
		}
		w := 1 / (p.Demand.SE * p.Demand.SE)
		o, n, y := float64(p.Old), float64(p.New), p.Demand.Mean
		soo += w * o * o
		snn += w * n * n
		son += w * o * n
		soy += w * o * y
		sny += w * n * y
		hasOld = hasOld || p.Old > 0
		hasNew = hasNew || p.New > 0
	}
	if !hasNew {
		return Cost{}, fmt.Errorf("no wave with new agents and steady data yet")
	}
	var c Cost
	params := 1
	if !hasOld {
		c.NewPerAgent = sny / snn
		c.VarNew = 1 / snn
	} else {
		det := soo*snn - son*son
		if det <= 1e-9*soo*snn {
			return Cost{}, ErrCannotSeparate
		}
		c.HasOld = true
		params = 2
		c.OldPerAgent = (snn*soy - son*sny) / det
		c.NewPerAgent = (soo*sny - son*soy) / det
		c.VarOld = snn / det
		c.VarNew = soo / det
		c.CovOldNew = -son / det
	}
	if scale := misfit(points, c, params); scale > 1 {
		c.VarOld *= scale
		c.VarNew *= scale
		c.CovOldNew *= scale
	}
	return c, nil
}

// misfit is the reduced χ² of the fit, or 1 when there are no spare degrees of freedom.
func misfit(points []Point, c Cost, params int) float64 {
	var chi2 float64
	used := 0
	for _, p := range points {
		if p.Demand.SE <= 0 || math.IsInf(p.Demand.SE, 0) || math.IsNaN(p.Demand.Mean) {
			continue
		}
		r := (p.Demand.Mean - c.Demand(p.Old, p.New)) / p.Demand.SE
		chi2 += r * r
		used++
	}
	if used <= params {
		return 1
	}
	return chi2 / float64(used-params)
}

// Demand is the fitted steady demand of a given mix of agents.
func (c Cost) Demand(old, new int) float64 {
	return c.OldPerAgent*float64(old) + c.NewPerAgent*float64(new)
}

// demandSE is the standard error of Demand(old, new).
func (c Cost) demandSE(old, new int) float64 {
	o, n := float64(old), float64(new)
	return math.Sqrt(math.Max(0, o*o*c.VarOld+n*n*c.VarNew+2*o*n*c.CovOldNew))
}

// Prediction is the steady demand of the whole fleet running the new version.
type Prediction struct {
	Agents int
	Total  Estimate
	// PerAgent is the new version's steady cost per agent.
	PerAgent Estimate
}

// Predict extrapolates linearly in agent count: fleet demand = agents × new cost per agent.
// That is sound when an agent's cost does not depend on how many other agents run — true of
// an agent that lists or watches the cluster (its cost follows the cluster's size, which the
// wave measured at full production scale) and false near saturation, where every request
// slows down; the prediction is then a lower bound, which the budget keeps us far from.
func (c Cost) Predict(agents int) Prediction {
	perAgent := Estimate{Mean: c.NewPerAgent, SE: math.Sqrt(c.VarNew)}
	return Prediction{
		Agents:   agents,
		Total:    Estimate{Mean: c.Demand(0, agents), SE: c.demandSE(0, agents)},
		PerAgent: perAgent,
	}
}

// MaxNextWave is the largest number of old (or absent) agents that can be switched to the new
// version at once while steady demand plus their start-up burst stays within budget:
//
//	demand(old−w, new+w) + w × burstPeakPerAgent ≤ budget
//
// using the upper end of the 95% interval of each per-agent cost. remaining caps the answer.
func (c Cost) MaxNextWave(old, new int, burstPeakPerAgent, budget float64, remaining int) int {
	if remaining <= 0 {
		return 0
	}
	now := c.Demand(old, new) + z95*c.demandSE(old, new)
	perSwitched := c.NewPerAgent + z95*math.Sqrt(c.VarNew) + math.Max(0, burstPeakPerAgent)
	if c.HasOld && old > 0 {
		// Switching an agent stops its old cost; count the old cost at its low end.
		perSwitched -= math.Max(0, c.OldPerAgent-z95*math.Sqrt(c.VarOld))
	}
	room := budget - now
	if room <= 0 {
		return 0
	}
	if perSwitched <= 0 || room/perSwitched >= float64(remaining) {
		return remaining
	}
	return int(math.Floor(room / perSwitched))
}

// maxUtilization caps the utilisation Slowdown takes: at 95% it is 20×, and past it a server is
// overloaded whatever the exact figure.
const maxUtilization = 0.95

// Slowdown is how much longer a request takes on a server whose CPU is busy a fraction
// utilization of the time than on an idle one, in a processor-sharing model: 1/(1 − ρ), capped
// at 20×. Seat-seconds and requests in flight scale with it; CPU per request does not.
func Slowdown(utilization float64) float64 {
	return 1 / (1 - math.Min(math.Max(utilization, 0), maxUtilization))
}
