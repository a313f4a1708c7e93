package apf

import (
	"strings"
	"testing"
)

func TestCompartmentsGrowAtOnceAndShrinkOnlyWellBelow(t *testing.T) {
	s := DefaultCompartmentSizing
	tests := []struct {
		name        string
		current     int
		steady      float64
		want        int
		wantChanged bool
	}{
		{"a first size is twice the demand", 0, 2.2, 5, true},
		{"an idle agent still gets one seat", 0, 0, 1, true},
		{"demand up: grow at once", 5, 3.1, 7, true},
		{"demand a little down: keep", 10, 4, 10, false},
		{"demand at the shrink line: keep", 10, 2.5, 10, false},
		{"demand well down: shrink", 10, 2, 4, true},
		{"never past the maximum", 0, 100, 60, true},
		{"the same size is no change", 4, 2, 4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed, err := SizeCompartment(tt.current, tt.steady, s)
			if err != nil || got != tt.want || changed != tt.wantChanged {
				t.Fatalf("SizeCompartment(%d, %v) = %d, %v, %v; want %d, %v", tt.current, tt.steady, got, changed, err, tt.want, tt.wantChanged)
			}
		})
	}
}

func TestNoisyDemandDoesNotResizeACompartment(t *testing.T) {
	current, resizes := 0, 0
	// A steady 2-seat agent measured with ±30% noise, one sample per rollout.
	for _, d := range []float64{2.0, 2.6, 1.4, 2.3, 1.5, 2.5, 1.6, 2.0} {
		next, changed, err := SizeCompartment(current, d, DefaultCompartmentSizing)
		if err != nil {
			t.Fatal(err)
		}
		if changed {
			resizes++
		}
		current = next
	}
	if resizes > 2 {
		t.Fatalf("%d resizes for a steady agent; hysteresis should allow at most 2 (the first size and one growth)", resizes)
	}
}

func TestCompartmentSizingRefusesNonsense(t *testing.T) {
	for name, c := range map[string]struct {
		steady float64
		s      CompartmentSizing
		want   string
	}{
		"negative demand":  {-1, DefaultCompartmentSizing, "must be a number ≥ 0"},
		"headroom below 1": {1, CompartmentSizing{Headroom: 0.5, ShrinkBelow: 0.5, MinSeats: 1, MaxSeats: 2}, "headroom"},
		"no shrink line":   {1, CompartmentSizing{Headroom: 2, ShrinkBelow: 0, MinSeats: 1, MaxSeats: 2}, "shrink threshold"},
		"bounds reversed":  {1, CompartmentSizing{Headroom: 2, ShrinkBelow: 0.5, MinSeats: 3, MaxSeats: 2}, "seat bounds"},
	} {
		if _, _, err := SizeCompartment(0, c.steady, c.s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, c.want)
		}
	}
}

func TestACompartmentLendsButNeverBorrows(t *testing.T) {
	pl, fs, err := CompartmentObjects(CompartmentName("agents", "agent"), "daemonset/agents/agent", ServiceAccount("agents", "agent"), 3, 7)
	if err != nil {
		t.Fatal(err)
	}
	l := pl.Spec.Limited
	if *l.BorrowingLimitPercent != 0 || *l.LendablePercent != 100 || *l.NominalConcurrencyShares != 3 {
		t.Fatalf("level %+v", l)
	}
	if fs.Spec.MatchingPrecedence != PrecedenceCompartment || fs.Spec.PriorityLevelConfiguration.Name != pl.Name ||
		fs.Spec.Rules[0].Subjects[0].ServiceAccount.Name != "agent" || pl.Labels[PurposeLabel] != string(PurposeCompartment) || pl.Annotations[SeatsAnnotation] != "7" {
		t.Fatalf("schema %+v, level labels %v annotations %v", fs.Spec, pl.Labels, pl.Annotations)
	}
	if long := CompartmentName(strings.Repeat("n", 63), strings.Repeat("d", 253)); len(long) != 253 {
		t.Fatalf("a long name has %d characters, want 253", len(long))
	}
}
