package rollout

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/predict"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

var limits = check.DefaultBudget.Limits(check.Capacity{CPU: 2, CPUFrom: "GOMAXPROCS", Seats: 600})

func measured(r check.Resource, mean, se float64, samples int) map[check.Resource]check.Measured {
	return map[check.Resource]check.Measured{r: {Steady: predict.Estimate{Mean: mean, SE: se, Samples: samples}}}
}

func TestDescribeSaysWhereTheRolloutStandsAndWhatComesNext(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)
	st, err := state.New(state.Start{ID: "r1", Kind: state.Update, WavesSpec: "1%,100%", Targets: []int{2, 200}, Eligible: 200,
		Soak: time.Minute, Budget: check.DefaultBudget, Limits: limits, Lane: state.Lane{FlowSchema: "l", PriorityLevel: "l"},
		OriginalStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}, OriginalHash: "abc"}, t0)
	if err != nil {
		t.Fatalf("state.New: %v", err)
	}
	st, err = st.Decided(analyze.Proceed, state.WaveRecord{Old: 200, Resources: measured(check.CPU, 0.12, 0.004, 12)}, "", t0.Add(time.Minute))
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
		"budget:  cpu: 0.500 cores (25% of the API servers' 2.0 cores, from GOMAXPROCS); memory: the API servers' memory limit is not visible (no GOMEMLIMIT): pass --apiserver-memory to gate on memory; seats: 60 seats (10% of the API servers' 600 seats); lane l",
		"baseline: 0 new + 200 old agents used 0.120 cores ± 0.0040 cores steady",
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
		Soak: time.Minute, Budget: check.DefaultBudget, Limits: limits, Lane: state.Lane{FlowSchema: "l", PriorityLevel: "l"}, NodeLabel: "n"}, t0)
	if err != nil {
		t.Fatalf("state.New: %v", err)
	}
	if st, err = st.Decided(analyze.Proceed, state.WaveRecord{}, "", t0); err != nil {
		t.Fatalf("Decided: %v", err)
	}
	if st, err = st.WaveRolled(2, t0); err != nil {
		t.Fatalf("WaveRolled: %v", err)
	}
	headline := "wave 1: 2 agents use 0.0500 cores; 200 agents would need 5.00 cores (95%: 3.99–6.01) of the API servers' 2.0 cores — budget 0.500 cores (25%) — halting"
	if st, err = st.Decided(analyze.Halt, state.WaveRecord{New: 2, Resources: measured(check.CPU, 0.05, 0.005, 9), Headline: headline},
		"cpu: 200 agents would need 5.00 cores", t0.Add(time.Minute)); err != nil {
		t.Fatalf("Decided: %v", err)
	}
	got := Describe("obs", "agent", st, t0.Add(time.Minute))
	for _, want := range []string{"halted:  " + headline, "reason:  cpu: 200 agents would need 5.00 cores", "next:    rollback"} {
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
		{Options{Waves: "1%,5%", Soak: time.Minute}, "must end with 100%"},
		{Options{Waves: "1%,100%", Soak: 0}, "--soak 0s must be positive"},
		{Options{Waves: "1%,100%", Soak: time.Minute, Budget: check.Budget{check.CPU: 0}}, "--budget cpu=0% must be within (0, 100%]"},
		{Options{Waves: "1%,100%", Soak: time.Minute, Budget: check.Budget{check.Seats: 120}}, "--budget seats=120%"},
		{Options{Waves: "1%,100%", Soak: time.Minute, APIServerCPUs: -2}, "--apiserver-cpus -2 must not be negative"},
		{Options{Waves: "1%,100%", Soak: time.Minute, ServerSeats: -1}, "--server-seats -1 must not be negative"},
	}
	for _, tt := range tests {
		if _, err := tt.o.Validate(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.o, err, tt.wantErr)
		}
	}
	if _, err := (Options{Waves: "1%,100%", Soak: time.Minute, Budget: check.DefaultBudget}).Validate(); err != nil {
		t.Errorf("good options: %v", err)
	}
}

func TestDescribeSaysAnObservedRolloutWouldHaveHalted(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)
	st, err := state.New(state.Start{ID: "r3", Kind: state.Create, Mode: state.Observe, WavesSpec: "100%", Eligible: 200, Targets: []int{200},
		Soak: time.Minute, Budget: check.DefaultBudget, Limits: limits, Lane: state.Lane{FlowSchema: "l", PriorityLevel: "workload-low", Shared: true}}, t0)
	if err != nil {
		t.Fatalf("state.New: %v", err)
	}
	if st, err = st.Observed(200, t0.Add(time.Minute)); err != nil {
		t.Fatalf("Observed: %v", err)
	}
	headline := "wave 1: 200 agents use 4.10 cores; 200 agents would need 4.10 cores (95%: 3.90–4.30) of the API servers' 2.0 cores — budget 0.500 cores (25%) — halting"
	if st, err = st.Decided(analyze.Halt, state.WaveRecord{New: 200, Resources: measured(check.CPU, 4.1, 0.1, 9), Headline: headline},
		"cpu: 200 agents would need 4.10 cores", t0.Add(2*time.Minute)); err != nil {
		t.Fatalf("Decided: %v", err)
	}
	got := Describe("obs", "agent", st, t0.Add(2*time.Minute))
	for _, want := range []string{"mode:    observe", "level workload-low, never held", "guard would have halted it: " + headline, "next:    finish"} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q:\n%s", want, got)
		}
	}
}
