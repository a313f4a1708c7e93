package rollout

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

func TestDescribeSaysWhereTheRolloutStandsAndWhatComesNext(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)
	st, err := state.New(state.Start{ID: "r1", Kind: state.Update, WavesSpec: "1%,100%", Targets: []int{2, 200}, Eligible: 200,
		Soak: time.Minute, BudgetPercent: 10, BudgetSeats: 60, Lane: state.Lane{FlowSchema: "l", PriorityLevel: "l"},
		OriginalStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}, OriginalHash: "abc"}, t0)
	if err != nil {
		t.Fatalf("state.New: %v", err)
	}
	st, err = st.Decided(analyze.Proceed, state.WaveRecord{Old: 200, Seats: 20, SE: 0.4, Samples: 12}, "", t0.Add(time.Minute))
	if err != nil {
		t.Fatalf("Decided: %v", err)
	}
	st, err = st.Pause(t0.Add(2 * time.Minute))
	if err != nil {
		t.Fatalf("Pause: %v", err)
	}
	got := Describe("obs", "agent", st, t0.Add(3*time.Minute))
	for _, want := range []string{
		"DaemonSet obs/agent, rollout r1 (update)",
		"phase:   Rolling, paused — wave 1 of 2, 0 of 200 nodes switched (target 2)",
		"updated: 1m0s ago",
		"budget:  10% = 60 seats; lane l",
		"baseline: 0 new + 200 old agents used 20 ± 0.4 seats steady (12 samples)",
		"next:    paused",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q:\n%s", want, got)
		}
	}
}

func TestDescribeShowsTheHaltingWavesDecision(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)
	st, err := state.New(state.Start{ID: "r2", Kind: state.Create, WavesSpec: "1%,100%", Targets: []int{2, 200}, Eligible: 200,
		Soak: time.Minute, BudgetPercent: 10, BudgetSeats: 60, Lane: state.Lane{FlowSchema: "l", PriorityLevel: "l"}, NodeLabel: "n"}, t0)
	if err != nil {
		t.Fatalf("state.New: %v", err)
	}
	if st, err = st.WaveRolled(2, t0); err != nil {
		t.Fatalf("WaveRolled: %v", err)
	}
	headline := "wave 1: 2 agents use 1.8 seats steady; 200 agents would need 180 seats (95%: 170–190) against a budget of 60 — halting"
	if st, err = st.Decided(analyze.Halt, state.WaveRecord{New: 2, Seats: 1.8, Headline: headline}, "200 agents would need 180 seats", t0.Add(time.Minute)); err != nil {
		t.Fatalf("Decided: %v", err)
	}
	got := Describe("obs", "agent", st, t0.Add(time.Minute))
	for _, want := range []string{"halted:  " + headline, "reason:  200 agents would need 180 seats", "next:    rollback"} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q:\n%s", want, got)
		}
	}
}

func TestOptionsAreCheckedBeforeAnythingElse(t *testing.T) {
	tests := []struct {
		o       Options
		wantErr string
	}{
		{Options{Waves: "1%,5%", Soak: time.Minute, BudgetPercent: 10}, "must end with 100%"},
		{Options{Waves: "1%,100%", Soak: 0, BudgetPercent: 10}, "--soak 0s must be positive"},
		{Options{Waves: "1%,100%", Soak: time.Minute, BudgetPercent: 0}, "--budget 0% must be within (0, 100%]"},
		{Options{Waves: "1%,100%", Soak: time.Minute, BudgetPercent: 120}, "--budget 120%"},
	}
	for _, tt := range tests {
		if _, err := tt.o.Validate(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.o, err, tt.wantErr)
		}
	}
	if _, err := (Options{Waves: "1%,100%", Soak: time.Minute, BudgetPercent: 10}).Validate(); err != nil {
		t.Errorf("good options: %v", err)
	}
}

func TestParseBudget(t *testing.T) {
	for in, want := range map[string]float64{"10%": 10, "10": 10, " 2.5% ": 2.5, "100%": 100} {
		if got, err := ParseBudget(in); err != nil || got != want {
			t.Errorf("ParseBudget(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, wantErr := range map[string]string{"0%": "must be within (0, 100%]", "101%": "must be within", "-5": "must be within", "ten": "want a percentage", "": "want a percentage", "NaN%": "want a percentage"} {
		if _, err := ParseBudget(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseBudget(%q) error = %v, want %q", in, err, wantErr)
		}
	}
}
