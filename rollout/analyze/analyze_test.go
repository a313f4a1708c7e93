package analyze

import (
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/predict"
)

// lane makes 5-second lane samples from the wave's start to until: burstSeats until 25s (the
// agents' first LIST and sync), then steadySeats. A request costs 0.1 seat-seconds.
func lane(until time.Duration, burstSeats, steadySeats float64) []predict.Sample {
	var out []predict.Sample
	for end := 5 * time.Second; end <= until; end += 5 * time.Second {
		s := steadySeats
		if end <= 25*time.Second {
			s = burstSeats
		}
		out = append(out, predict.Sample{End: end, Span: 5 * time.Second, DispatchedPerSec: s / 0.1, ExecutingSeats: s})
	}
	return out
}

// wave1 is wave 1 of a new DaemonSet on 200 nodes with a 60-seat budget: two agents, Ready
// 10 s after their pods were created, observed for 80 s (soak done at 70 s).
func wave1(steadySeats float64) Observations {
	return Observations{
		Wave: 1, FleetSize: 200, BudgetSeats: 60, Soak: 60 * time.Second, Elapsed: 80 * time.Second,
		Agents: Agents{Desired: 2, Ready: 2, Started: 2, ReadyAt: 10 * time.Second},
		Lane:   lane(80*time.Second, steadySeats+1, steadySeats),
	}
}

func with(o Observations, change func(*Observations)) Observations {
	change(&o)
	return o
}

func TestAnalyze(t *testing.T) {
	tests := []struct {
		name        string
		obs         Observations
		want        Verdict
		wantReason  string // substring of some reason ("" = no reasons expected)
		wantHeading string // substring of the headline
	}{
		{
			name: "a well-behaved agent proceeds",
			obs:  wave1(0.02), want: Proceed,
			wantHeading: "wave 1: 2 agents use 0.02 seats steady; 200 agents would need 2.0 seats (95%: 1.0–3.0) against a budget of 60 — proceeding",
		},
		{
			name: "the seed's agent halts with the numbers in words",
			obs:  wave1(1.8), want: Halt, wantReason: "200 agents would need 180 seats",
			wantHeading: "wave 1: 2 agents use 1.8 seats steady; 200 agents would need 180 seats (95%: 173–187) against a budget of 60 — halting",
		},
		{
			name: "the seed's agent halts before the soak ends once the interval's low end is over budget",
			obs: with(wave1(1.8), func(o *Observations) {
				o.Elapsed = 35 * time.Second
				o.Lane = lane(35*time.Second, 2.8, 1.8)
			}),
			want: Halt, wantReason: "200 agents would need 180 seats",
		},
		{
			name: "a good wave still soaks",
			obs: with(wave1(0.02), func(o *Observations) {
				o.Elapsed = 40 * time.Second
				o.Lane = lane(40*time.Second, 1.02, 0.02)
			}),
			want: Hold, wantReason: "soaking: 30s of 1m0s", wantHeading: "— holding (soaking: 30s of 1m0s)",
		},
		{
			name: "agents still starting",
			obs: with(wave1(0.02), func(o *Observations) {
				o.Agents.Ready, o.Elapsed, o.Lane = 1, 30*time.Second, lane(30*time.Second, 1, 1)
			}),
			want: Hold, wantReason: "waiting for agents: 1 of 2 new agents Ready after 30s",
		},
		{
			name: "agents not Ready within the soak halt",
			obs: with(wave1(0.02), func(o *Observations) {
				o.Agents.Ready, o.Elapsed, o.Lane = 1, 70*time.Second, lane(70*time.Second, 1, 1)
			}),
			want: Halt, wantReason: "1 of 2 new agents Ready after 1m10s, past the 1m0s allowed",
		},
		{
			name: "an SLO breach halts at once",
			obs: with(wave1(0.02), func(o *Observations) {
				o.Elapsed, o.Lane = 30*time.Second, lane(30*time.Second, 1, 0.02)
				o.SLIs = []SLI{{Verb: "get", Scope: "resource", P99: 1400 * time.Millisecond, SLO: time.Second, Requests: 5000}}
			}),
			want: Halt, wantReason: "SLO breached: GET resource p99 1.4s > 1s (5000 requests)",
			wantHeading: "— halting (SLO breached",
		},
		{
			name: "a p99 over a handful of requests is not evidence",
			obs: with(wave1(0.02), func(o *Observations) {
				o.SLIs = []SLI{{Verb: "list", Scope: "cluster", P99: 40 * time.Second, SLO: 30 * time.Second, Requests: 3}}
			}),
			want: Proceed,
		},
		{
			name: "an SLO met proceeds",
			obs: with(wave1(0.02), func(o *Observations) {
				o.SLIs = []SLI{{Verb: "list", Scope: "cluster", P99: 14 * time.Second, SLO: 30 * time.Second, Requests: 900}}
			}),
			want: Proceed,
		},
		{
			name: "other flows rejected is collateral damage",
			obs: with(wave1(0.02), func(o *Observations) {
				o.Others = []Flow{{FlowSchema: "service-accounts", PriorityLevel: "workload-low", RejectedPerSec: 2.5}}
			}),
			want: Halt, wantReason: "collateral damage: flow schema service-accounts (priority level workload-low) is being rejected, 2.50/s (before the rollout: 0.00/s)",
		},
		{
			name: "rejections that predate the rollout are not its damage",
			obs: with(wave1(0.02), func(o *Observations) {
				o.Others = []Flow{{FlowSchema: "global-default", PriorityLevel: "global-default", RejectedPerSec: 2.5, BaselineRejectedPerSec: 2.49}}
			}),
			want: Proceed,
		},
		{
			name: "other flows waiting longer is collateral damage",
			obs: with(wave1(0.02), func(o *Observations) {
				o.Others = []Flow{{FlowSchema: "service-accounts", PriorityLevel: "workload-low", WaitP99: 900 * time.Millisecond, BaselineWaitP99: 10 * time.Millisecond}}
			}),
			want: Halt, wantReason: "waits 900ms at p99 in APF queues (before the rollout: 10ms)",
		},
		{
			name: "a lane that throttles the seed's agent still sees its demand",
			obs: with(wave1(1.8), func(o *Observations) {
				// The lane holds 0.3 seats: half the requests are rejected, the queue fills.
				for i := range o.Lane {
					o.Lane[i] = predict.Sample{End: o.Lane[i].End, Span: 5 * time.Second, DispatchedPerSec: 3, RejectedPerSec: 15, ExecutingSeats: 0.3, QueuedAtStart: 50, QueuedAtEnd: 50}
				}
			}),
			want: Halt, wantReason: "200 agents would need 180 seats",
		},
		{
			name: "a prediction straddling the budget soaks longer",
			obs: with(wave1(0.55), func(o *Observations) {
				o.Lane = noisy(80*time.Second, 0.55, 0.5)
			}),
			want: Hold, wantReason: "the interval straddles the budget",
		},
		{
			name: "and halts once the longest soak is over",
			obs: with(wave1(0.55), func(o *Observations) {
				o.Elapsed = 200 * time.Second
				o.Lane = noisy(200*time.Second, 0.55, 0.9)
			}),
			want: Halt, wantReason: "still uncertain after 3m0s",
		},
		{
			name: "too few steady samples after the soak",
			obs: with(wave1(0.02), func(o *Observations) {
				o.Lane = o.Lane[:6] // the scraper lost everything after 30 s
			}),
			want: Hold, wantReason: "too little steady data: 1 steady samples, want 3",
		},
		{
			name: "no steady data at all after the longest soak halts",
			obs: with(wave1(0.02), func(o *Observations) {
				o.Elapsed, o.Lane = 200*time.Second, o.Lane[:5]
			}),
			want: Halt, wantReason: "no usable steady-state measurement: 0 steady samples",
		},
		{
			name: "nonsense observations hold and say why",
			obs:  with(wave1(0.02), func(o *Observations) { o.Agents.Desired = 300 }),
			want: Hold, wantReason: "cannot analyse: 300 agents desired in a fleet of 200",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Analyze(tt.obs)
			if d.Verdict != tt.want {
				t.Fatalf("verdict = %s, want %s\nheadline: %s\nreasons: %q", d.Verdict, tt.want, d.Headline, d.Reasons)
			}
			if tt.wantReason == "" && len(d.Reasons) > 0 {
				t.Fatalf("unexpected reasons %q", d.Reasons)
			}
			if tt.wantReason != "" && !containsSome(d.Reasons, tt.wantReason) {
				t.Fatalf("reasons %q lack %q", d.Reasons, tt.wantReason)
			}
			if !strings.Contains(d.Headline, tt.wantHeading) {
				t.Fatalf("headline %q lacks %q", d.Headline, tt.wantHeading)
			}
		})
	}
}

// noisy is a steady series alternating mean×(1±spread) after a 25 s burst.
func noisy(until time.Duration, mean, spread float64) []predict.Sample {
	out := lane(until, mean+1, mean)
	for i := range out {
		if out[i].End > 25*time.Second {
			f := 1 + spread
			if i%2 == 0 {
				f = 1 - spread
			}
			out[i].ExecutingSeats *= f
			out[i].DispatchedPerSec *= f
		}
	}
	return out
}

func containsSome(reasons []string, want string) bool {
	for _, r := range reasons {
		if strings.Contains(r, want) {
			return true
		}
	}
	return false
}

func TestAnalyzeAnUpdateSeparatesOldFromNewCost(t *testing.T) {
	// 200 nodes run the old version at 0.1 seats per agent; the new one costs 1.0.
	baseline := Observations{
		Wave: 0, FleetSize: 200, BudgetSeats: 60, Soak: 60 * time.Second, Elapsed: 60 * time.Second,
		Agents: Agents{Old: 200},
		Lane:   lane(60*time.Second, 20, 20),
	}
	b := Analyze(baseline)
	if b.Verdict != Proceed || !strings.HasPrefix(b.Headline, "baseline: 200 agents use 20 seats steady against a budget of 60 — proceeding") {
		t.Fatalf("baseline: %s %q %q", b.Verdict, b.Headline, b.Reasons)
	}

	w1 := Observations{
		Wave: 1, FleetSize: 200, BudgetSeats: 60, Soak: 60 * time.Second, Elapsed: 80 * time.Second,
		Agents:  Agents{Desired: 2, Ready: 2, Started: 2, Old: 198, ReadyAt: 10 * time.Second},
		Lane:    lane(80*time.Second, 23, 21.8),
		History: []predict.Point{{Old: 200, Seats: b.Measurement.Steady}},
	}
	d := Analyze(w1)
	if d.Verdict != Halt {
		t.Fatalf("verdict %s, want halt: %q", d.Verdict, d.Headline)
	}
	want := "wave 1: 2 agents (new version) use 1.0 seats each steady (the old version 0.1 each); 200 agents would need 200 seats"
	if !strings.HasPrefix(d.Headline, want) {
		t.Fatalf("headline %q\nwant prefix %q", d.Headline, want)
	}

	noBaseline := w1
	noBaseline.History = nil
	if d := Analyze(noBaseline); d.Verdict != Hold || !containsSome(d.Reasons, "soak a baseline") {
		t.Fatalf("without a baseline: %s %q, want a hold asking for a baseline", d.Verdict, d.Reasons)
	}
}

func TestAnalyzeRefusesAnUpdateWhoseCurrentVersionIsAlreadyOverBudget(t *testing.T) {
	d := Analyze(Observations{
		Wave: 0, FleetSize: 200, BudgetSeats: 60, Soak: 60 * time.Second, Elapsed: 60 * time.Second,
		Agents: Agents{Old: 200},
		Lane:   lane(60*time.Second, 80, 80),
	})
	if d.Verdict != Halt || !containsSome(d.Reasons, "the current version alone needs 80 seats, above the budget of 60") {
		t.Fatalf("%s %q", d.Verdict, d.Reasons)
	}
}

func TestAnalyzeSizesTheNextWaveSoItsBurstFitsTheBudget(t *testing.T) {
	// 0.2 seats per agent steady, 2.5 seats per agent at the start-up peak.
	o := wave1(0.4)
	o.Lane = lane(80*time.Second, 5.4, 0.4)
	d := Analyze(o)
	if d.Verdict != Proceed {
		t.Fatalf("verdict %s: %q", d.Verdict, d.Reasons)
	}
	if d.Measurement.BurstPeakPerAgent != 2.5 {
		t.Fatalf("burst per agent %v, want 2.5", d.Measurement.BurstPeakPerAgent)
	}
	// A flat series has the 2% floor as SE (0.008 seats for the wave, 0.004 per agent):
	// (60 − 0.4 − 1.96·0.008) / (0.2 + 1.96·0.004 + 2.5) = 22.0
	if d.MaxNextWave != 22 {
		t.Fatalf("MaxNextWave = %d, want 22", d.MaxNextWave)
	}
}

// The per-node lister measured in the 200-node lab: 0.1 seats per agent at 2 agents, 0.38 at
// 50 (the server slows as it gets busier). The earlier waves say 0.1; the latest
// wave says the fleet needs 76 seats, over a 59-seat budget.
func TestAnalyzePredictsFromTheLatestWaveWhenCostPerAgentGrows(t *testing.T) {
	o := Observations{
		Wave: 3, FleetSize: 200, BudgetSeats: 59, Soak: 60 * time.Second, Elapsed: 80 * time.Second,
		Agents: Agents{Desired: 50, Ready: 50, Started: 40, ReadyAt: 10 * time.Second},
		Lane:   lane(80*time.Second, 25, 19),
		History: []predict.Point{
			{New: 2, Seats: predict.Estimate{Mean: 0.2, SE: 0.01, Samples: 9}},
			{New: 10, Seats: predict.Estimate{Mean: 2.1, SE: 0.1, Samples: 9}},
		},
	}
	d := Analyze(o)
	if d.Verdict != Halt {
		t.Fatalf("verdict %s: %s", d.Verdict, d.Headline)
	}
	if !containsSome(d.Notes, "the cost per agent grew with the number of agents (earlier waves 0.1, this wave 0.4)") {
		t.Fatalf("notes %q", d.Notes)
	}
	if !strings.Contains(d.Headline, "200 agents would need 76 seats") {
		t.Fatalf("headline %q", d.Headline)
	}
}

// The demo's telemetry agent, with a budget large enough to reach wave 3: 0.015 seats per agent
// at 2 agents, 0.22 at 50, measured over samples so noisy that the two intervals overlap. The
// fleet cannot need less than 4× what 50 agents already use.
func TestAnalyzeNeverPredictsBelowTheLatestWavesCostPerAgent(t *testing.T) {
	noisy := lane(40*time.Second, 25, 11)
	for i, seats := range []float64{1, 21, 11} { // the three steady intervals
		s := &noisy[len(noisy)-3+i]
		s.ExecutingSeats, s.DispatchedPerSec = seats, seats/0.1
	}
	o := Observations{
		Wave: 3, FleetSize: 200, BudgetSeats: 60, Soak: 30 * time.Second, Elapsed: 40 * time.Second,
		Agents: Agents{Desired: 50, Ready: 50, Started: 40, ReadyAt: 10 * time.Second},
		Lane:   noisy,
		History: []predict.Point{
			{New: 2, Seats: predict.Estimate{Mean: 0.03, SE: 0.002, Samples: 9}},
			{New: 10, Seats: predict.Estimate{Mean: 0.16, SE: 0.01, Samples: 9}},
		},
	}
	d := Analyze(o)
	if d.Prediction == nil || d.Prediction.Seats.Mean < 40 {
		t.Fatalf("prediction %+v below 4 × the 11 seats 50 agents use; headline %q", d.Prediction, d.Headline)
	}
	if !containsSome(d.Notes, "the cost per agent grew with the number of agents") {
		t.Fatalf("notes %q", d.Notes)
	}
}

func TestAHaltBeforeSteadyStateDoesNotClaimAMeasurement(t *testing.T) {
	o := wave1(0.02)
	o.Wave, o.Agents.Desired, o.Agents.Ready, o.Agents.Started = 2, 10, 10, 8
	o.Elapsed, o.Lane = 20*time.Second, lane(20*time.Second, 3, 3)
	o.History = []predict.Point{{New: 2, Seats: predict.Estimate{Mean: 0.3, SE: 0.1, Samples: 9}}}
	o.SLIs = []SLI{{Verb: "PUT", Scope: "resource", P99: 1100 * time.Millisecond, SLO: time.Second, Requests: 399}}
	d := Analyze(o)
	want := "wave 2: 10 agents: no steady measurement yet; earlier waves predict 30 seats (95%: 10–50) for 200 agents against a budget of 60 — halting (SLO breached: PUT resource p99 1.1s > 1s (399 requests))"
	if d.Verdict != Halt || d.Headline != want {
		t.Fatalf("%s\n got %q\nwant %q", d.Verdict, d.Headline, want)
	}
}
