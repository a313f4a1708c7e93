package apf

import (
	"strings"
	"testing"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// defaultLevels mirrors the shares kube-apiserver v1.37 installs (bootstrap/default.go):
// they sum to 245, so workload-low's 100 shares of 600 seats are ceil(600·100/245) = 245 seats.
func defaultLevels() []flowcontrolv1.PriorityLevelConfiguration {
	limited := func(name string, shares int32) flowcontrolv1.PriorityLevelConfiguration {
		return flowcontrolv1.PriorityLevelConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
				Type:    flowcontrolv1.PriorityLevelEnablementLimited,
				Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{NominalConcurrencyShares: &shares},
			},
		}
	}
	zero := int32(0)
	return []flowcontrolv1.PriorityLevelConfiguration{
		{ObjectMeta: metav1.ObjectMeta{Name: "exempt"}, Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type: flowcontrolv1.PriorityLevelEnablementExempt, Exempt: &flowcontrolv1.ExemptPriorityLevelConfiguration{NominalConcurrencyShares: &zero}}},
		limited("catch-all", 5), limited("system", 30), limited("node-high", 40), limited("leader-election", 10),
		limited("workload-high", 40), limited("workload-low", 100), limited("global-default", 20),
	}
}

func TestSumSharesCountsEveryLevelButTheOneBeingSized(t *testing.T) {
	levels := defaultLevels()
	if got := SumShares(levels, ""); got != 245 {
		t.Fatalf("sum of default shares = %d, want 245", got)
	}
	if got := SumShares(levels, "workload-low"); got != 145 {
		t.Fatalf("sum without workload-low = %d, want 145", got)
	}
	if got := NominalSeats(600, 100, 245); got != 245 {
		t.Fatalf("workload-low nominal seats = %d, want 245", got)
	}
}

func TestSharesOfAppliesTheAPIServersDefaults(t *testing.T) {
	tests := []struct {
		name string
		pl   flowcontrolv1.PriorityLevelConfiguration
		want int32
	}{
		{"limited without shares defaults to 30", flowcontrolv1.PriorityLevelConfiguration{Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type: flowcontrolv1.PriorityLevelEnablementLimited, Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{}}}, 30},
		{"exempt without shares defaults to 0", flowcontrolv1.PriorityLevelConfiguration{Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type: flowcontrolv1.PriorityLevelEnablementExempt}}, 0},
		{"explicit zero is a jail", flowcontrolv1.PriorityLevelConfiguration{Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type: flowcontrolv1.PriorityLevelEnablementLimited, Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{NominalConcurrencyShares: ptr(int32(0))}}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SharesOf(&tt.pl); got != tt.want {
				t.Fatalf("SharesOf = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestSharesForSeats(t *testing.T) {
	tests := []struct {
		name        string
		serverCL    int
		otherShares int64
		seats       int
		want        int32
	}{
		// The lab measurement in context.md: 1 share next to the defaults is 3 seats.
		{"one seat next to the defaults needs one share (which gives 3)", 600, 245, 1, 1},
		{"a 10% budget of 600 seats", 600, 245, 60, 27},
		{"three seats", 600, 245, 3, 1},
		{"four seats need two shares", 600, 245, 4, 2},
		{"the only level gets everything from one share", 600, 0, 600, 1},
		{"the whole server next to others", 600, 245, 600, 146756},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SharesForSeats(tt.serverCL, tt.otherShares, tt.seats)
			if err != nil {
				t.Fatalf("SharesForSeats: %v", err)
			}
			if got != tt.want {
				t.Fatalf("SharesForSeats(%d, %d, %d) = %d, want %d", tt.serverCL, tt.otherShares, tt.seats, got, tt.want)
			}
		})
	}
}

func TestSharesForSeatsIsTheLeastSufficientShare(t *testing.T) {
	for _, serverCL := range []int{50, 600, 3000} {
		for _, others := range []int64{1, 30, 245, 1000} {
			for seats := 1; seats <= serverCL; seats += 1 + seats/7 {
				s, err := SharesForSeats(serverCL, others, seats)
				if err != nil {
					t.Fatalf("SharesForSeats(%d, %d, %d): %v", serverCL, others, seats, err)
				}
				if got := NominalSeats(serverCL, s, others+int64(s)); got < seats {
					t.Fatalf("serverCL %d others %d: %d shares give %d seats, want ≥ %d", serverCL, others, s, got, seats)
				}
				if s > 1 {
					if got := NominalSeats(serverCL, s-1, others+int64(s-1)); got >= seats {
						t.Fatalf("serverCL %d others %d: %d shares already give %d ≥ %d seats; %d is not the least", serverCL, others, s-1, got, seats, s)
					}
				}
			}
		}
	}
}

func TestSharesForSeatsRejectsImpossibleSizes(t *testing.T) {
	tests := []struct {
		name        string
		serverCL    int
		otherShares int64
		seats       int
		wantErr     string
	}{
		{"zero seats", 600, 245, 0, "want at least 1 seat"},
		{"more than the server", 600, 245, 601, "cannot exceed the server's capacity of 600"},
		{"no server capacity", 0, 245, 1, "server capacity 0"},
		{"negative shares", 600, -1, 1, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SharesForSeats(tt.serverCL, tt.otherShares, tt.seats)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestServerSeatsRecoversTheServersCapacity(t *testing.T) {
	levels := defaultLevels()
	for _, serverCL := range []int{50, 400, 600, 601, 3000} {
		nominal := map[string]float64{}
		for i := range levels {
			nominal[levels[i].Name] = float64(NominalSeats(serverCL, SharesOf(&levels[i]), 245))
		}
		nominal["deleted-yesterday"] = 80 // a lingering gauge of a level that is gone
		got, err := ServerSeats(levels, nominal)
		if err != nil {
			t.Fatalf("ServerSeats: %v", err)
		}
		// With the defaults, Σ/max(NCS) = 2.45: a few neighbours of the truth fit the data too.
		if got > serverCL || got < serverCL-2 {
			t.Fatalf("ServerSeats = %d, want %d or at most 2 below (nominal %v)", got, serverCL, nominal)
		}
		for i := range levels {
			if NominalSeats(got, SharesOf(&levels[i]), 245) != int(nominal[levels[i].Name]) {
				t.Fatalf("%d seats do not reproduce level %s's nominal seats", got, levels[i].Name)
			}
		}
	}
	if _, err := ServerSeats(levels, map[string]float64{"exempt": 0}); err == nil {
		t.Fatalf("no usable level: want an error")
	}
}
