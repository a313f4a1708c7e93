package apf

import (
	"fmt"
	"math"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
)

// defaultLimitedShares is what the API server fills in when a Limited level omits
// nominalConcurrencyShares (flowcontrol/v1 defaulting); Exempt levels default to 0.
const defaultLimitedShares = 30

// NominalSeats is kube-apiserver's NominalCL of a level: ceil(serverCL × shares / sumShares),
// where sumShares is the sum over all levels, this one included.
func NominalSeats(serverCL int, shares int32, sumShares int64) int {
	if sumShares <= 0 || shares <= 0 {
		return 0
	}
	return int(math.Ceil(float64(serverCL) * float64(shares) / float64(sumShares)))
}

// SharesOf is the nominalConcurrencyShares the API server uses for a level, defaults applied.
func SharesOf(pl *flowcontrolv1.PriorityLevelConfiguration) int32 {
	switch pl.Spec.Type {
	case flowcontrolv1.PriorityLevelEnablementLimited:
		if pl.Spec.Limited == nil || pl.Spec.Limited.NominalConcurrencyShares == nil {
			return defaultLimitedShares
		}
		return *pl.Spec.Limited.NominalConcurrencyShares
	case flowcontrolv1.PriorityLevelEnablementExempt:
		if pl.Spec.Exempt == nil || pl.Spec.Exempt.NominalConcurrencyShares == nil {
			return 0
		}
		return *pl.Spec.Exempt.NominalConcurrencyShares
	}
	return 0
}

// SumShares adds the shares of all levels except the one named except, which is the level
// about to be (re)sized: its old shares must not count against its new size.
func SumShares(levels []flowcontrolv1.PriorityLevelConfiguration, except string) int64 {
	var sum int64
	for i := range levels {
		if levels[i].Name == except {
			continue
		}
		sum += int64(SharesOf(&levels[i]))
	}
	return sum
}

// SharesForSeats returns the smallest nominalConcurrencyShares that gives a new level at least
// seats seats when the other levels' shares sum to otherShares. Adding the level grows the sum,
// so the answer is the least s with ceil(serverCL·s/(otherShares+s)) ≥ seats, i.e.
// s > (seats−1)·otherShares/(serverCL−seats+1).
func SharesForSeats(serverCL int, otherShares int64, seats int) (int32, error) {
	switch {
	case serverCL <= 0:
		return 0, fmt.Errorf("server capacity %d seats must be positive", serverCL)
	case seats <= 0:
		return 0, fmt.Errorf("a level of %d seats: want at least 1 seat", seats)
	case seats > serverCL:
		return 0, fmt.Errorf("a level of %d seats cannot exceed the server's capacity of %d seats", seats, serverCL)
	case otherShares < 0:
		return 0, fmt.Errorf("other levels' shares %d must not be negative", otherShares)
	}
	s := (int64(seats)-1)*otherShares/int64(serverCL-seats+1) + 1
	// The closed form is exact in integers; the loop guards against float rounding in the
	// server's own ceil, which NominalSeats reproduces.
	for NominalSeats(serverCL, int32(min(s, math.MaxInt32)), otherShares+s) < seats {
		s++
	}
	if s > math.MaxInt32 {
		return 0, fmt.Errorf("a level of %d seats out of %d needs %d shares, more than the API allows", seats, serverCL, s)
	}
	return int32(s), nil
}

// ServerSeats recovers a server's concurrency limit (ServerCL) from the levels' shares and the
// NominalCL the server reports for each (apiserver_flowcontrol_nominal_limit_seats). Since
// NominalCL(i) = ceil(ServerCL × NCS(i) / Σ NCS), each level confines ServerCL to
// ((NominalCL(i)−1)·Σ/NCS(i), NominalCL(i)·Σ/NCS(i)]. Several values can agree with every level
// (598 to 600 with the v1.37 defaults: the data cannot tell them apart); the smallest is
// returned, the cautious choice for a budget, at most Σ/max(NCS) seats (2.45) below the truth.
// Adding up the nominal limits instead over-counts by every level's rounding, and by levels
// deleted since (their gauges linger in /metrics). Levels missing from nominal are skipped.
func ServerSeats(levels []flowcontrolv1.PriorityLevelConfiguration, nominal map[string]float64) (int, error) {
	sum := SumShares(levels, "")
	type level struct {
		shares int32
		seats  int
	}
	var known []level
	lower, upper := 1, math.MaxInt
	for i := range levels {
		shares := SharesOf(&levels[i])
		seats, ok := nominal[levels[i].Name]
		if shares <= 0 || !ok || seats <= 0 {
			continue
		}
		n := int(math.Round(seats))
		known = append(known, level{shares, n})
		lower = max(lower, int((int64(n)-1)*sum/int64(shares))+1)
		upper = min(upper, int(int64(n)*sum/int64(shares)))
	}
	if len(known) == 0 {
		return 0, fmt.Errorf("no priority level with shares reports its nominal seats")
	}
	for c := lower; c <= upper; c++ {
		consistent := true
		for _, l := range known {
			if NominalSeats(c, l.shares, sum) != l.seats {
				consistent = false
				break
			}
		}
		if consistent {
			return c, nil
		}
	}
	return 0, fmt.Errorf("the reported nominal seats fit no server capacity for these shares (between %d and %d); are the levels and the metrics from the same server?", lower, upper)
}
