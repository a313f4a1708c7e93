package apf

import (
	"fmt"
	"hash/fnv"
	"math"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
)

// PurposeCompartment marks a standing compartment: the APF lane a guarded DaemonSet's service
// account keeps after its rollout, so that an agent that misbehaves later hurts only itself.
const PurposeCompartment Purpose = "compartment"

// PrecedenceCompartment is just after rollout lanes (850): while a new rollout of the same
// DaemonSet runs, its lane measures the agents; afterwards the compartment holds them. Both
// beat kube-system-service-accounts (900) and service-accounts (9000).
const PrecedenceCompartment int32 = 860

// SeatsAnnotation records on a compartment's level the seats it was sized for: the next
// sizing starts from it (hysteresis), whatever the shares now give after other levels changed.
const SeatsAnnotation = "bulkhead.dev/seats"

// CompartmentName names a DaemonSet's compartment "bulkhead-compartment-<namespace>.<name>";
// a name too long keeps its start and ends with a hash of the identity.
func CompartmentName(namespace, name string) string {
	n := "bulkhead-compartment-" + namespace + "." + name
	if len(n) > 253 {
		h := fnv.New32a()
		h.Write([]byte(namespace + "/" + name))
		n = fmt.Sprintf("%s-%08x", n[:253-9], h.Sum32())
	}
	return n
}

// CompartmentSizing is how a compartment follows its DaemonSet's measured steady demand.
type CompartmentSizing struct {
	// Headroom multiplies the steady demand: room for bursts and growth of the fleet.
	Headroom float64
	// ShrinkBelow: a compartment shrinks only when its new size is below this share of its
	// current one; it grows as soon as the demand needs it. The gap is the hysteresis that
	// keeps a noisy measurement from resizing the level (and every other level) each time.
	ShrinkBelow float64
	// MinSeats and MaxSeats bound the size, per API server.
	MinSeats, MaxSeats int
}

// DefaultCompartmentSizing: twice the steady demand, at least 1 seat, shrink when the new
// size is under half the current one, never more than 10% of a 600-seat server.
var DefaultCompartmentSizing = CompartmentSizing{Headroom: 2, ShrinkBelow: 0.5, MinSeats: 1, MaxSeats: 60}

// SizeCompartment returns the seats per API server a compartment should have for a steady
// demand (seats per API server) when it has current seats now (0: none yet), and whether that
// differs from current.
func SizeCompartment(current int, steadySeats float64, s CompartmentSizing) (int, bool, error) {
	switch {
	case math.IsNaN(steadySeats) || math.IsInf(steadySeats, 0) || steadySeats < 0:
		return 0, false, fmt.Errorf("steady demand %v seats must be a number ≥ 0", steadySeats)
	case s.Headroom < 1:
		return 0, false, fmt.Errorf("headroom %v must be at least 1", s.Headroom)
	case s.ShrinkBelow <= 0 || s.ShrinkBelow > 1:
		return 0, false, fmt.Errorf("shrink threshold %v must be within (0, 1]", s.ShrinkBelow)
	case s.MinSeats < 1 || s.MaxSeats < s.MinSeats:
		return 0, false, fmt.Errorf("seat bounds %d..%d: want 1 ≤ min ≤ max", s.MinSeats, s.MaxSeats)
	}
	target := min(s.MaxSeats, max(s.MinSeats, int(math.Ceil(steadySeats*s.Headroom))))
	switch {
	case current <= 0, target > current, float64(target) < s.ShrinkBelow*float64(current):
		return target, target != current, nil
	default:
		return current, false, nil
	}
}

// CompartmentObjects builds a compartment for the service account sa: a Limited level of the
// given shares that lends what it does not use but never borrows (the agents can never take
// more), and a FlowSchema sending every request of sa to it.
func CompartmentObjects(name, owner string, sa Subject, shares int32, seats int) (*flowcontrolv1.PriorityLevelConfiguration, *flowcontrolv1.FlowSchema, error) {
	own := Ownership{Purpose: PurposeCompartment, Owner: owner, Annotations: map[string]string{SeatsAnnotation: fmt.Sprint(seats)}}
	noBorrowing := int32(0)
	pl, err := PriorityLevel(LevelSpec{Name: name, Shares: shares, LendablePercent: 100, BorrowingLimitPercent: &noBorrowing}, own)
	if err != nil {
		return nil, nil, fmt.Errorf("compartment: %w", err)
	}
	fs, err := FlowSchema(SchemaSpec{Name: name, Level: name, Precedence: PrecedenceCompartment, Subjects: []Subject{sa}}, own)
	if err != nil {
		return nil, nil, fmt.Errorf("compartment: %w", err)
	}
	return pl, fs, nil
}
