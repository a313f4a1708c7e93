package predict

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestDemandCountsWhatTheLaneHeldBack(t *testing.T) {
	tests := []struct {
		name   string
		sample Sample
		price  float64
		want   Demand
	}{
		{"unthrottled: demand is what executed",
			Sample{Span: 10 * time.Second, DispatchedPerSec: 10, Used: 1.8}, 0,
			Demand{Value: 1.8}},
		{"rejections priced like dispatched requests",
			Sample{Span: 10 * time.Second, DispatchedPerSec: 10, RejectedPerSec: 10, Used: 3}, 0,
			Demand{Value: 6, Throttled: true}},
		{"a growing queue is unserved demand",
			Sample{Span: 10 * time.Second, DispatchedPerSec: 10, Used: 3, QueuedAtStart: 0, QueuedAtEnd: 50}, 0,
			Demand{Value: 4.5, Throttled: true}},
		{"a draining queue does not lower demand below what executed",
			Sample{Span: 10 * time.Second, DispatchedPerSec: 10, Used: 3, QueuedAtStart: 50, QueuedAtEnd: 0}, 0,
			Demand{Value: 3}},
		{"jammed lane priced from the rest of the wave",
			Sample{Span: 10 * time.Second, RejectedPerSec: 20, Used: 3}, 0.3,
			Demand{Value: 6, Throttled: true}},
		{"jammed lane with no price is only a lower bound",
			Sample{Span: 10 * time.Second, RejectedPerSec: 20, Used: 3}, 0,
			Demand{Value: 3, Throttled: true, LowerBound: true}},
		{"idle lane", Sample{Span: 10 * time.Second}, 0, Demand{}},
		{"requests dispatched earlier still use what they use",
			Sample{Span: 10 * time.Second, Used: 0.5}, 0.3,
			Demand{Value: 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DemandOf(tt.sample, tt.price)
			if !near(got.Value, tt.want.Value, 1e-9) || got.Throttled != tt.want.Throttled || got.LowerBound != tt.want.LowerBound {
				t.Fatalf("DemandOf = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// series makes 5-second samples: burst seats until burstEnd, then steady seats, each request
// costing 0.1 seat-seconds.
func series(total, burstEnd time.Duration, burst, steady float64) []Sample {
	var out []Sample
	for end := 5 * time.Second; end <= total; end += 5 * time.Second {
		seats := steady
		if end <= burstEnd {
			seats = burst
		}
		out = append(out, Sample{End: end, Span: 5 * time.Second, DispatchedPerSec: seats / 0.1, Used: seats})
	}
	return out
}

func TestMeasureSeparatesTheStartUpBurstFromSteadyState(t *testing.T) {
	m := Measure(series(60*time.Second, 10*time.Second, 5.8, 1.8), 10*time.Second, 2, 0.005)
	if !near(m.Steady.Mean, 1.8, 1e-9) || m.Steady.Samples != 10 {
		t.Fatalf("steady = %+v, want mean 1.8 over 10 samples", m.Steady)
	}
	if !near(m.Steady.SE, 0.036, 1e-9) {
		t.Fatalf("a flat series has SE %v; want the 2%% measurement floor 0.036", m.Steady.SE)
	}
	if !near(m.BurstPeakPerAgent, 2, 1e-9) || !near(m.BurstExtraPerAgent, 20, 1e-9) {
		t.Fatalf("burst = %v seats peak, %v seat-seconds per agent; want 2 and 20", m.BurstPeakPerAgent, m.BurstExtraPerAgent)
	}
	if m.Throttled || m.LowerBound {
		t.Fatalf("nothing was throttled: %+v", m)
	}
}

func TestMeasureWithOneSteadySampleHasNoFiniteError(t *testing.T) {
	m := Measure(series(15*time.Second, 10*time.Second, 5, 1), 10*time.Second, 1, 0.005)
	if m.Steady.Samples != 1 || !math.IsInf(m.Steady.SE, 1) {
		t.Fatalf("steady = %+v, want one sample with infinite SE", m.Steady)
	}
}

func TestFitCostForANewDaemonSet(t *testing.T) {
	cost, err := FitCost([]Point{{New: 2, Demand: Estimate{Mean: 1.8, SE: 0.05}}})
	if err != nil {
		t.Fatalf("FitCost: %v", err)
	}
	p := cost.Predict(200)
	if !near(p.Total.Mean, 180, 1e-9) || !near(p.Total.SE, 5, 1e-9) || !near(p.PerAgent.Mean, 0.9, 1e-9) {
		t.Fatalf("prediction = %+v, want 180 ± 5 seats, 0.9 per agent", p)
	}
	if cost.HasOld {
		t.Fatalf("a new DaemonSet has no old version")
	}
}

func TestFitCostSeparatesOldFromNewAcrossWaves(t *testing.T) {
	// 200 nodes; old agents cost 0.1 seats, new ones 1.0.
	points := []Point{
		{Old: 200, New: 0, Demand: Estimate{Mean: 20, SE: 0.4}},
		{Old: 198, New: 2, Demand: Estimate{Mean: 21.8, SE: 0.4}},
		{Old: 190, New: 10, Demand: Estimate{Mean: 29, SE: 0.6}},
	}
	cost, err := FitCost(points)
	if err != nil {
		t.Fatalf("FitCost: %v", err)
	}
	if !near(cost.OldPerAgent, 0.1, 1e-6) || !near(cost.NewPerAgent, 1.0, 1e-6) {
		t.Fatalf("cost = old %v new %v per agent, want 0.1 and 1.0", cost.OldPerAgent, cost.NewPerAgent)
	}
	if p := cost.Predict(200); !near(p.Total.Mean, 200, 1e-4) {
		t.Fatalf("fleet prediction %v, want 200", p.Total.Mean)
	}
}

func TestFitCostNeedsABaselineToSeparateVersions(t *testing.T) {
	_, err := FitCost([]Point{{Old: 198, New: 2, Demand: Estimate{Mean: 21.8, SE: 0.4}}})
	if !errors.Is(err, ErrCannotSeparate) {
		t.Fatalf("error = %v, want ErrCannotSeparate", err)
	}
	if _, err := FitCost([]Point{{Old: 200, Demand: Estimate{Mean: 20, SE: 0.4}}}); err == nil {
		t.Fatalf("a baseline alone says nothing about the new version; want an error")
	}
}

func TestFitCostWidensTheIntervalWhenWavesDisagree(t *testing.T) {
	consistent := []Point{{New: 2, Demand: Estimate{Mean: 2, SE: 0.1}}, {New: 10, Demand: Estimate{Mean: 10, SE: 0.1}}}
	disagreeing := []Point{{New: 2, Demand: Estimate{Mean: 2, SE: 0.1}}, {New: 10, Demand: Estimate{Mean: 20, SE: 0.1}}}
	a, err := FitCost(consistent)
	if err != nil {
		t.Fatalf("FitCost: %v", err)
	}
	b, err := FitCost(disagreeing)
	if err != nil {
		t.Fatalf("FitCost: %v", err)
	}
	if b.VarNew < 100*a.VarNew {
		t.Fatalf("misfit variance %v not much wider than consistent %v", b.VarNew, a.VarNew)
	}
}

// A simulated agent fleet: each agent costs 0.9 seats on average with noisy intervals. The
// interval predicted from a 2-agent wave must cover the true 200-agent demand.
func TestPredictionIntervalCoversTheTruthForANoisyAgent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	covered := 0
	const trials = 200
	for range trials {
		var samples []Sample
		for i := 1; i <= 12; i++ {
			seats := 0.0
			for range 2 {
				seats += 0.9 * (1 + 0.3*rng.NormFloat64())
			}
			samples = append(samples, Sample{End: time.Duration(i) * 5 * time.Second, Span: 5 * time.Second, DispatchedPerSec: seats * 10, Used: seats})
		}
		m := Measure(samples, 0, 0, 0.005)
		cost, err := FitCost([]Point{{New: 2, Demand: m.Steady}})
		if err != nil {
			t.Fatalf("FitCost: %v", err)
		}
		if p := cost.Predict(200).Total; p.Low() <= 180 && 180 <= p.High() {
			covered++
		}
	}
	if covered < trials*90/100 {
		t.Fatalf("95%% interval covered the truth in %d of %d trials", covered, trials)
	}
}

func TestMaxNextWave(t *testing.T) {
	newDS := Cost{NewPerAgent: 0.9, VarNew: 0}
	update := Cost{OldPerAgent: 0.1, NewPerAgent: 1.0, HasOld: true}
	tests := []struct {
		name          string
		cost          Cost
		old, new      int
		burst, budget float64
		remaining     int
		want          int
	}{
		{"new DaemonSet: (60 − 1.8) / (0.9 + 0.5)", newDS, 0, 2, 0.5, 60, 198, 41},
		{"capped by what remains", newDS, 0, 2, 0.5, 60, 10, 10},
		{"already over budget", newDS, 0, 70, 0.5, 60, 130, 0},
		{"update pays only the difference: (60 − 21.8) / (1.0 − 0.1 + 0.3)", update, 198, 2, 0.3, 60, 198, 31},
		{"nothing left", newDS, 0, 200, 0, 600, 0, 0},
		{"free agents take everything", Cost{}, 0, 2, 0, 60, 198, 198},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cost.MaxNextWave(tt.old, tt.new, tt.burst, tt.budget, tt.remaining); got != tt.want {
				t.Fatalf("MaxNextWave = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestT975MatchesStudentsTable(t *testing.T) {
	for _, tt := range []struct {
		df   int
		want float64
	}{{1, 12.706}, {5, 2.571}, {11, 2.201}, {20, 2.086}, {60, 2.000}, {1000, 1.962}} {
		if got := t975(tt.df); !near(got, tt.want, 0.003) {
			t.Errorf("t975(%d) = %.4f, want %.3f", tt.df, got, tt.want)
		}
	}
}

// An agent listing every 10 s scraped every 5 s: intervals alternate between a list and none.
// The steady mean is well known (one list per 10 s) even though single intervals swing 0↔2.
func TestAPeriodicAgentIsNotMistakenForANoisyOne(t *testing.T) {
	var samples []Sample
	for i := 1; i <= 16; i++ {
		seats := 0.0
		if i%2 == 0 {
			seats = 2
		}
		samples = append(samples, Sample{End: time.Duration(i) * 5 * time.Second, Span: 5 * time.Second, DispatchedPerSec: seats * 10, Used: seats})
	}
	m := Measure(samples, 0, 0, 0.005)
	if !near(m.Steady.Mean, 1, 1e-9) {
		t.Fatalf("mean %v, want 1", m.Steady.Mean)
	}
	// Treating the 16 intervals as independent would give SE = 1/√16 × t(15)/z ≈ 0.27.
	if m.Steady.SE > 0.1 {
		t.Fatalf("steady %+v: batches of whole periods should pin the mean", m.Steady)
	}
}
