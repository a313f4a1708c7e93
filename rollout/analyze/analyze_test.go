package analyze

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/predict"
)

// use is what a lane and the servers do in one scrape interval: the agents' CPU (cores, which
// their execution time and requests also show, as check's constants price them), their seats
// and their requests per second.
type use struct {
	cpu, seats, requests float64
}

// baseCPU is what the servers burn without the agents.
const baseCPU = 0.1

// intervals makes 5-second intervals from the wave's start to until: burst until 25 s (the
// agents' first LIST and sync), then steady.
func intervals(until time.Duration, burst, steady use) []check.Interval {
	var out []check.Interval
	for end := 5 * time.Second; end <= until; end += 5 * time.Second {
		u := steady
		if end <= 25*time.Second {
			u = burst
		}
		out = append(out, check.Interval{End: end, Span: 5 * time.Second, Dispatched: u.requests,
			Executing: max(0, u.cpu-check.PerRequestCPU*u.requests) / check.Kappa, SeatSeconds: u.seats,
			ServerCPU: baseCPU + u.cpu, CPUKnown: true, ServerMemory: 700 << 20, MemoryKnown: true})
	}
	return out
}

// limits are a 2-core API server with 600 seats and no visible memory limit, at the default
// budget: 0.5 cores, 60 seats.
func limits() map[check.Resource]check.Limit {
	return check.DefaultBudget.Limits(check.Capacity{CPU: 2, CPUFrom: "GOMAXPROCS", Seats: 600, CPUUsed: baseCPU})
}

// wave1 is wave 1 of a new DaemonSet on 200 nodes: two agents, Ready 10 s after their pods were
// created, observed for 80 s (soak done at 70 s), each using cpu cores steadily (10 seats and
// a tenth of a request per second each, like the seed's LIST every 10 s).
func wave1(cpuPerAgent float64) Observations {
	steady := use{cpu: 2 * cpuPerAgent, seats: 2 * cpuPerAgent * 10, requests: 0.2}
	burst := use{cpu: steady.cpu * 3, seats: steady.seats * 3, requests: 0.6}
	return Observations{Wave: check.Wave{
		Number: 1, Fleet: 200, Soak: 60 * time.Second, Elapsed: 80 * time.Second,
		Agents:    check.Agents{Desired: 2, Ready: 2, Started: 2, ReadyAt: 10 * time.Second},
		Intervals: intervals(80*time.Second, burst, steady),
		Reference: check.Reference{ServerCPU: predict.Estimate{Mean: baseCPU, SE: 0.005, Samples: 6}},
		Limits:    limits(),
	}}
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
		wantKind    ReasonKind
	}{
		{
			name: "a well-behaved agent proceeds",
			obs:  wave1(0.0005), wantKind: KindNone, want: Proceed,
			wantHeading: "wave 1: 2 agents use 0.0010 cores; 200 agents would need 0.100 cores (95%: 0.0955–0.104) of the API servers' 2.0 cores — budget 0.500 cores (25%) — proceeding",
		},
		{
			name: "the seed's agent halts on CPU, with the numbers in words",
			obs:  wave1(0.025), wantKind: KindBudget, want: Halt, wantReason: "cpu: 200 agents would need 5.00 cores",
			wantHeading: "wave 1: 2 agents use 0.0500 cores; 200 agents would need 5.00 cores (95%: 4.07–5.93) of the API servers' 2.0 cores — budget 0.500 cores (25%) — halting",
		},
		{
			name: "the seed's agent halts before the soak ends once the interval's low end is over budget",
			obs: with(wave1(0.025), func(o *Observations) {
				o.Wave.Elapsed = 35 * time.Second
				o.Wave.Intervals = o.Wave.Intervals[:7]
			}),
			wantKind: KindBudget, want: Halt, wantReason: "cpu: 200 agents would need 5.00 cores",
		},
		{
			name: "a good wave still soaks",
			obs: with(wave1(0.0005), func(o *Observations) {
				o.Wave.Elapsed = 40 * time.Second
				o.Wave.Intervals = o.Wave.Intervals[:8]
			}),
			wantKind: KindSoaking, want: Hold, wantReason: "soaking: 30s of 1m0s", wantHeading: "— holding (soaking: 30s of 1m0s)",
		},
		{
			name: "agents still starting",
			obs: with(wave1(0.0005), func(o *Observations) {
				o.Wave.Agents.Ready, o.Wave.Elapsed, o.Wave.Intervals = 1, 30*time.Second, o.Wave.Intervals[:6]
			}),
			wantKind: KindAgents, want: Hold, wantReason: "waiting for agents: 1 of 2 new agents Ready after 30s",
		},
		{
			name: "agents not Ready within the soak halt",
			obs: with(wave1(0.0005), func(o *Observations) {
				o.Wave.Agents.Ready, o.Wave.Elapsed, o.Wave.Intervals = 1, 70*time.Second, o.Wave.Intervals[:14]
			}),
			wantKind: KindAgents, want: Halt, wantReason: "1 of 2 new agents Ready after 1m10s, past the 1m0s allowed",
		},
		{
			name: "an SLO breach halts at once",
			obs: with(wave1(0.0005), func(o *Observations) {
				o.Wave.Elapsed, o.Wave.Intervals = 30*time.Second, o.Wave.Intervals[:6]
				o.SLIs = []check.SLI{{Verb: "get", Scope: "resource", P99: 1400 * time.Millisecond, SLO: time.Second, Requests: 5000}}
			}),
			wantKind: KindSLO, want: Halt, wantReason: "SLO breached: GET resource p99 1.4s > 1s (5000 requests)",
			wantHeading: "— halting (SLO breached",
		},
		{
			name: "a p99 over a handful of requests is not evidence",
			obs: with(wave1(0.0005), func(o *Observations) {
				o.SLIs = []check.SLI{{Verb: "list", Scope: "cluster", P99: 40 * time.Second, SLO: 30 * time.Second, Requests: 3}}
			}),
			wantKind: KindNone, want: Proceed,
		},
		{
			name: "other flows rejected is collateral damage",
			obs: with(wave1(0.0005), func(o *Observations) {
				o.Others = []check.Flow{{FlowSchema: "service-accounts", PriorityLevel: "workload-low", RejectedPerSec: 2.5}}
			}),
			wantKind: KindCollateral, want: Halt, wantReason: "collateral damage: flow schema service-accounts (priority level workload-low) is being rejected, 2.50/s (before the rollout: 0.00/s)",
		},
		{
			name: "rejections that predate the rollout are not its damage",
			obs: with(wave1(0.0005), func(o *Observations) {
				o.Others = []check.Flow{{FlowSchema: "global-default", PriorityLevel: "global-default", RejectedPerSec: 2.5, BaselineRejectedPerSec: 2.49}}
			}),
			wantKind: KindNone, want: Proceed,
		},
		{
			name: "other flows waiting longer is collateral damage",
			obs: with(wave1(0.0005), func(o *Observations) {
				o.Others = []check.Flow{{FlowSchema: "service-accounts", PriorityLevel: "workload-low", WaitP99: 900 * time.Millisecond, BaselineWaitP99: 10 * time.Millisecond}}
			}),
			wantKind: KindCollateral, want: Halt, wantReason: "waits 900ms at p99 in APF queues (before the rollout: 10ms)",
		},
		{
			name: "a lane that throttles the seed's agent still sees its demand",
			obs: with(wave1(0.025), func(o *Observations) {
				// Two thirds of the requests are rejected: what executed is a third of the demand.
				for i := range o.Wave.Intervals {
					iv := &o.Wave.Intervals[i]
					iv.Rejected, iv.Dispatched = 2*iv.Dispatched/3, iv.Dispatched/3
					iv.Executing, iv.SeatSeconds, iv.ServerCPU = iv.Executing/3, iv.SeatSeconds/3, baseCPU+(iv.ServerCPU-baseCPU)/3
				}
			}),
			wantKind: KindBudget, want: Halt, wantReason: "cpu: 200 agents would need 5.00 cores",
		},
		{
			name: "a prediction straddling the budget soaks longer",
			obs: with(wave1(0.0022), func(o *Observations) {
				noisy(o.Wave.Intervals, 0.9)
			}),
			wantKind: KindBudget, want: Hold, wantReason: "the interval straddles the budget",
		},
		{
			name: "and halts once the longest soak is over",
			obs: with(wave1(0.0025), func(o *Observations) {
				o.Wave.Elapsed = 200 * time.Second
				o.Wave.Intervals = intervals(200*time.Second, use{cpu: 0.015, seats: 0.15, requests: 0.6}, use{cpu: 0.0044, seats: 0.044, requests: 0.2})
				noisy(o.Wave.Intervals, 0.9)
			}),
			wantKind: KindBudget, want: Halt, wantReason: "still uncertain after 3m0s",
		},
		{
			name: "too few steady samples after the soak",
			obs: with(wave1(0.0005), func(o *Observations) {
				o.Wave.Intervals = o.Wave.Intervals[:6] // the scraper lost everything after 30 s
			}),
			wantKind: KindSteadyData, want: Hold, wantReason: "too little steady data: 1 steady samples, want 3",
		},
		{
			name: "no steady data at all after the longest soak halts",
			obs: with(wave1(0.0005), func(o *Observations) {
				o.Wave.Elapsed, o.Wave.Intervals = 200*time.Second, o.Wave.Intervals[:5]
			}),
			wantKind: KindSteadyData, want: Halt, wantReason: "no usable steady-state measurement: 0 steady samples",
		},
		{
			name:     "nonsense observations hold and say why",
			obs:      with(wave1(0.0005), func(o *Observations) { o.Wave.Agents.Desired = 300 }),
			wantKind: KindInvalid, want: Hold, wantReason: "cannot analyse: 300 agents desired in a fleet of 200",
		},
		{
			name: "without the servers' CPU capacity the seats still gate, and the words say what is blind",
			obs: with(wave1(0.025), func(o *Observations) {
				l := o.Wave.Limits
				cpu := l[check.CPU]
				cpu.Capacity = 0
				l[check.CPU] = cpu
			}),
			wantKind: KindNone, want: Proceed, wantHeading: "of the API servers' 600 seats — budget 60 seats (10%) — proceeding",
		},
		{
			name: "with no capacity visible at all nothing is treated as infinite",
			obs: with(wave1(0.0005), func(o *Observations) {
				o.Wave.Limits = check.DefaultBudget.Limits(check.Capacity{})
			}),
			wantKind: KindBlind, want: Halt, wantReason: "no resource of the API servers can be judged: the API servers' CPU capacity is not visible",
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
			if d.Kind != tt.wantKind {
				t.Fatalf("kind %q, want %q (reasons %q)", d.Kind, tt.wantKind, d.Reasons)
			}
			if !strings.Contains(d.Headline, tt.wantHeading) {
				t.Fatalf("headline %q lacks %q", d.Headline, tt.wantHeading)
			}
		})
	}
}

// noisy makes the steady intervals alternate mean×(1±spread) in the agents' use.
func noisy(ivs []check.Interval, spread float64) {
	for i := range ivs {
		if ivs[i].End <= 25*time.Second {
			continue
		}
		f := 1 + spread
		if i%2 == 0 {
			f = 1 - spread
		}
		iv := &ivs[i]
		iv.Executing, iv.SeatSeconds = iv.Executing*f, iv.SeatSeconds*f
		iv.ServerCPU = baseCPU + (iv.ServerCPU-baseCPU)*f
	}
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
	// 200 nodes run the old version at 0.0005 cores per agent; the new one costs 0.025.
	old := use{cpu: 0.1, seats: 1, requests: 20}
	baseline := Observations{Wave: check.Wave{
		Number: 0, Fleet: 200, Soak: 60 * time.Second, Elapsed: 60 * time.Second,
		Agents:    check.Agents{Old: 200},
		Intervals: intervals(60*time.Second, old, old),
		Limits:    limits(),
	}}
	b := Analyze(baseline)
	if b.Verdict != Proceed || !strings.HasPrefix(b.Headline, "baseline: 200 agents use 0.100 cores (the current version) of the API servers' 2.0 cores") {
		t.Fatalf("baseline: %s %q %q", b.Verdict, b.Headline, b.Reasons)
	}
	cpu, _ := b.Resource(check.CPU)
	seats, _ := b.Resource(check.Seats)
	history := []check.Record{{Old: 200, Resources: map[check.Resource]check.Measured{check.CPU: cpu.Record(), check.Seats: seats.Record()}}}
	mixed := use{cpu: 0.1 - 2*0.0005 + 2*0.025, seats: 1 - 0.01 + 0.5, requests: 20}
	w1 := Observations{Wave: check.Wave{
		Number: 1, Fleet: 200, Soak: 60 * time.Second, Elapsed: 80 * time.Second,
		Agents:    check.Agents{Desired: 2, Ready: 2, Started: 2, Old: 198, ReadyAt: 10 * time.Second},
		Intervals: intervals(80*time.Second, mixed, mixed),
		Reference: check.Reference{ServerCPU: predict.Estimate{Mean: baseCPU + 0.1, SE: 0.005, Samples: 12}, LaneCPU: cpu.Measurement.Steady},
		History:   history,
		Limits:    limits(),
	}}
	d := Analyze(w1)
	if d.Verdict != Halt {
		t.Fatalf("verdict %s, want halt: %q", d.Verdict, d.Headline)
	}
	want := "wave 1: 2 agents (new version) use 0.0250 cores each (the old version 0.0005 cores each); 200 agents would need 5.00 cores"
	if !strings.HasPrefix(d.Headline, want) {
		t.Fatalf("headline %q\nwant prefix %q", d.Headline, want)
	}
	noBaseline := w1
	noBaseline.Wave.History = nil
	if d := Analyze(noBaseline); d.Verdict != Hold || !containsSome(d.Reasons, "soak a baseline") {
		t.Fatalf("without a baseline: %s %q, want a hold asking for a baseline", d.Verdict, d.Reasons)
	}
}

func TestAnUpdateWithoutABaselineProceedsWhenEvenChargingTheOldAgentsFits(t *testing.T) {
	// Every wave mixes the versions in the same proportion, so their costs cannot be told
	// apart; 198 old and 2 new agents together use 0.002 cores. Charged to the 2 new ones, 200
	// would need 0.2 cores, within 0.5: it proceeds, and says how it bounded the cost.
	light := use{cpu: 0.002, seats: 0.02, requests: 0.2}
	d := Analyze(Observations{Wave: check.Wave{
		Number: 1, Fleet: 200, Soak: 60 * time.Second, Elapsed: 80 * time.Second,
		Agents:    check.Agents{Desired: 2, Ready: 2, Started: 2, Old: 198, ReadyAt: 10 * time.Second},
		Intervals: intervals(80*time.Second, light, light),
		Reference: check.Reference{ServerCPU: predict.Estimate{Mean: baseCPU, SE: 0.005, Samples: 12}},
		Limits:    limits(),
	}})
	if d.Verdict != Proceed || !containsSome(d.Notes, "charging the old agents' demand to the new ones (an upper bound)") {
		t.Fatalf("%s %q %q notes %q", d.Verdict, d.Headline, d.Reasons, d.Notes)
	}
}

func TestAShortSoakWaitsForEnoughWholeIntervalsBeforeGivingUp(t *testing.T) {
	// A 10-s soak with 5-s scrapes, agents Ready at 12 s: 30 s later (3 × soak) the steady
	// window, from Ready + 15 s = 27 s, holds two whole intervals (30–35 s, 35–40 s). That
	// holds; once the window has had room for four intervals, it halts.
	light := use{cpu: 0.001, seats: 0.01, requests: 0.2}
	all := intervals(40*time.Second, light, light)
	o := Observations{Wave: check.Wave{
		Number: 1, Fleet: 12, Soak: 10 * time.Second, Elapsed: 42 * time.Second,
		Agents:    check.Agents{Desired: 3, Ready: 3, Started: 3, ReadyAt: 12 * time.Second},
		Intervals: all[3:], // 15–20 s on: the meter began with the wave's pods
		Reference: check.Reference{ServerCPU: predict.Estimate{Mean: baseCPU, SE: 0.005, Samples: 6}},
		Limits:    limits(),
	}}
	if d := Analyze(o); d.Verdict != Hold || !containsSome(d.Reasons, "too little steady data: 2 steady samples, want 3") {
		t.Fatalf("%s %q: want a hold for a third interval", d.Verdict, d.Reasons)
	}
	o.Wave.Elapsed = 47 * time.Second // the steady window has had 20 s: room for four
	if d := Analyze(o); d.Verdict != Halt || !containsSome(d.Reasons, "no usable steady-state measurement") {
		t.Fatalf("%s %q: want a halt once the window had room for four intervals", d.Verdict, d.Reasons)
	}
}

func TestAnalyzeRefusesAnUpdateWhoseCurrentVersionIsAlreadyOverBudget(t *testing.T) {
	heavy := use{cpu: 0.8, seats: 80, requests: 20}
	d := Analyze(Observations{Wave: check.Wave{
		Number: 0, Fleet: 200, Soak: 60 * time.Second, Elapsed: 60 * time.Second,
		Agents:    check.Agents{Old: 200},
		Intervals: intervals(60*time.Second, heavy, heavy),
		Limits:    limits(),
	}})
	if d.Verdict != Halt || !containsSome(d.Reasons, "cpu: the current version alone needs 0.800 cores, above the budget of 0.500 cores") ||
		!containsSome(d.Reasons, "seats: the current version alone needs 80 seats, above the budget of 60 seats") {
		t.Fatalf("%s %q", d.Verdict, d.Reasons)
	}
}

func TestAnalyzeSizesTheNextWaveSoItsBurstFitsEveryBudget(t *testing.T) {
	// 0.0015 cores per agent steady, 0.025 cores per agent at the start-up peak.
	o := wave1(0.0015)
	o.Wave.Intervals = intervals(80*time.Second, use{cpu: 0.053, seats: 0.5, requests: 1}, use{cpu: 0.003, seats: 0.03, requests: 0.2})
	d := Analyze(o)
	if d.Verdict != Proceed {
		t.Fatalf("verdict %s: %q", d.Verdict, d.Reasons)
	}
	cpu, _ := d.Resource(check.CPU)
	if got := cpu.Measurement.BurstPeakPerAgent; got < 0.0249 || got > 0.0251 {
		t.Fatalf("CPU burst per agent %v, want 0.025", got)
	}
	// CPU binds: (0.5 − 0.003 − 1.96·SE) / (0.0015 + 1.96·SE per agent + 0.025) is about 18.
	if d.MaxNextWave < 16 || d.MaxNextWave > 19 || d.MaxNextWave != cpu.MaxNextWave {
		t.Fatalf("MaxNextWave = %d (CPU says %d), want about 18, set by CPU", d.MaxNextWave, cpu.MaxNextWave)
	}
}

// An agent listing every pod of a 4,000-pod lab: 0.022 seats per agent on a quiet server (0.1
// requests a second of 10 seats, 22 ms each). Linear in seats the fleet needs 4.4 seats, far
// inside 60; but 200 agents need 5 cores of the servers' 2, so every request would take 20×
// as long, and so would the seats they hold.
func TestSeatsAreRescaledToTheLoadTheFleetWouldCause(t *testing.T) {
	o := wave1(0.025)
	for i := range o.Wave.Intervals {
		o.Wave.Intervals[i].SeatSeconds = 0.044
	}
	d := Analyze(o)
	seats, _ := d.Resource(check.Seats)
	if seats.Prediction == nil || seats.Prediction.Total.Mean < 60 {
		t.Fatalf("seat prediction %+v: want the slowdown of a CPU-bound fleet in it (over 60 seats)", seats.Prediction)
	}
	if !containsSome(d.Notes, "seats: every request would take 20.0× as long with the fleet's CPU at 255% of capacity") {
		t.Fatalf("notes %q", d.Notes)
	}
}

// A poller whose period is longer than the soak: each of two agents LISTs once at start-up
// (0.25 CPU-seconds) and not again while the soak runs.
func TestAPollerWithALongPeriodIsBoundedNotMeasuredAsFree(t *testing.T) {
	at := func(elapsed time.Duration) Observations {
		o := wave1(0)
		o.Wave.Elapsed = elapsed
		o.Wave.Intervals = intervals(elapsed, use{cpu: 2 * 0.25 / 15, seats: 0.4, requests: 2.0 / 15}, use{})
		return o
	}
	// The steady window opens at 25 s. After 60 s of quiet, an agent polling every 60 s would
	// cost 200 × 0.25 / 60 = 0.83 cores.
	d := Analyze(at(85 * time.Second))
	if d.Verdict != Hold || d.Kind != KindQuiet || !containsSome(d.Reasons, "no request since start-up: cpu: an agent that polls every 1m0s or more would need at most 0.866 cores") {
		t.Fatalf("after a minute of quiet: %s %q", d.Verdict, d.Reasons)
	}
	// After 2 minutes the bound, 0.42 cores, fits: it proceeds, without ever having seen a second poll.
	d = Analyze(at(145 * time.Second))
	if d.Verdict != Proceed || !strings.Contains(d.Headline, "made no request for 2m0s: at most") {
		t.Fatalf("after two minutes of quiet: %s %q %q", d.Verdict, d.Headline, d.Reasons)
	}
}

func TestMemoryAboveItsCeilingHaltsWhateverThePrediction(t *testing.T) {
	o := wave1(0.0005)
	o.Wave.Limits = check.DefaultBudget.Limits(check.Capacity{CPU: 2, Seats: 600, Memory: 768 << 20, CPUUsed: baseCPU, MemoryUsed: 500 << 20})
	o.Wave.Intervals[10].ServerMemory = 700 << 20
	d := Analyze(o)
	if d.Verdict != Halt || !containsSome(d.Reasons, "memory: the API servers hold 700 MiB, above 80% of their 768 MiB") {
		t.Fatalf("%s %q", d.Verdict, d.Reasons)
	}
}

// The per-node lister measured in the 200-node lab, with the servers' capacity unknown (so no
// slowdown is modelled): 0.1 seats per agent at 2 agents, 0.38 at 50. The earlier waves say 0.1;
// the latest wave says the fleet needs 76 seats, over a 60-seat budget.
func TestAnalyzePredictsFromTheLatestWaveWhenCostPerAgentGrows(t *testing.T) {
	seats := func(mean, se float64) check.Record {
		return check.Record{Resources: map[check.Resource]check.Measured{check.Seats: {Steady: predict.Estimate{Mean: mean, SE: se, Samples: 9}}}}
	}
	r2, r10 := seats(0.2, 0.01), seats(2.1, 0.1)
	r2.New, r10.New = 2, 10
	o := Observations{Wave: check.Wave{
		Number: 3, Fleet: 200, Soak: 60 * time.Second, Elapsed: 80 * time.Second,
		Agents:    check.Agents{Desired: 50, Ready: 50, Started: 40, ReadyAt: 10 * time.Second},
		Intervals: intervals(80*time.Second, use{seats: 25, requests: 5}, use{seats: 19, requests: 5}),
		History:   []check.Record{r2, r10},
		Limits:    check.DefaultBudget.Limits(check.Capacity{Seats: 600}),
	}}
	d := Analyze(o)
	if d.Verdict != Halt {
		t.Fatalf("verdict %s: %s", d.Verdict, d.Headline)
	}
	if !containsSome(d.Notes, "seats: the cost per agent grew with the number of agents (earlier waves 0.12 seats, this wave 0.38 seats)") {
		t.Fatalf("notes %q", d.Notes)
	}
	if !strings.Contains(d.Headline, "200 agents would need 76 seats") {
		t.Fatalf("headline %q", d.Headline)
	}
}

func TestAHaltBeforeSteadyStateDoesNotClaimAMeasurement(t *testing.T) {
	o := wave1(0.0005)
	o.Wave.Number, o.Wave.Agents.Desired, o.Wave.Agents.Ready, o.Wave.Agents.Started = 2, 10, 10, 8
	o.Wave.Elapsed, o.Wave.Intervals = 20*time.Second, o.Wave.Intervals[:4]
	o.Wave.History = []check.Record{{New: 2, Resources: map[check.Resource]check.Measured{
		check.CPU: {Steady: predict.Estimate{Mean: 0.001, SE: 0.0002, Samples: 9}}}}}
	o.SLIs = []check.SLI{{Verb: "PUT", Scope: "resource", P99: 1100 * time.Millisecond, SLO: time.Second, Requests: 399}}
	d := Analyze(o)
	want := "wave 2: 10 agents: no steady measurement yet; earlier waves predict 0.100 cores (95%: 0.0608–0.139) for 200 agents of the API servers' 2.0 cores — budget 0.500 cores (25%) — halting (SLO breached: PUT resource p99 1.1s > 1s (399 requests))"
	if d.Verdict != Halt || d.Headline != want {
		t.Fatalf("%s\n got %q\nwant %q", d.Verdict, d.Headline, want)
	}
}

// A fleet whose seat cost per agent grows with the number of agents, as it does on a real server:
// each agent's CPU per request is fixed (0.004 cores), but its requests take longer, and hold
// their seats longer, as the CPU fills (processor sharing: 1/(1 − ρ)). Wave 1's 2 agents, measured
// with noise, must predict the seats 200 agents hold within the 95% interval — which a linear
// extrapolation of seat-seconds (4.2 seats for 7.3) would not.
func TestSeatPredictionCoversAFleetWhoseCostPerAgentGrowsWithLoad(t *testing.T) {
	const cpuPerAgent, seatsPerAgentIdle, capacity = 0.004, 0.02, 2.0
	utilization := func(agents int) float64 { return (baseCPU + float64(agents)*cpuPerAgent) / capacity }
	seatsAt := func(agents int) float64 {
		return float64(agents) * seatsPerAgentIdle * predict.Slowdown(utilization(agents))
	}
	truth := seatsAt(200)
	rng := rand.New(rand.NewPCG(3, 4))
	covered, linearCovered := 0, 0
	const trials = 200
	for range trials {
		o := wave1(cpuPerAgent)
		for i := range o.Wave.Intervals {
			iv := &o.Wave.Intervals[i]
			f := 1 + 0.2*rng.NormFloat64()
			iv.SeatSeconds = seatsAt(2) * f
			iv.ServerCPU = baseCPU + (iv.ServerCPU-baseCPU)*f + 0.03*rng.NormFloat64()
			iv.Executing *= f
			if iv.End <= 25*time.Second {
				iv.SeatSeconds *= 3
			}
		}
		seats, _ := Analyze(o).Resource(check.Seats)
		if p := seats.Prediction.Total; p.Low() <= truth && truth <= p.High() {
			covered++
		}
		if linear := 100 * seats.Measurement.Steady.Mean; linear >= 0.9*truth {
			linearCovered++
		}
	}
	if covered < trials*90/100 {
		t.Fatalf("the 95%% interval covered the fleet's %.2f seats in %d of %d trials", truth, covered, trials)
	}
	if linearCovered > trials/10 {
		t.Fatalf("a linear extrapolation came within 10%% of the truth in %d of %d trials: the case is not one that needs the slowdown", linearCovered, trials)
	}
}

// Three replicas of 2 cores: 200 agents needing 1.3 cores fit the sum's budget (25% of 6), but
// each agent's connection lands on one replica, and the busiest carries about 40% of 200 agents
// (1/3 plus the binomial spread): 0.52 cores, over its own 0.5.
func TestTheBusiestReplicaMustFitItsOwnShare(t *testing.T) {
	o := wave1(0.0065)
	o.Wave.Limits = check.DefaultBudget.Limits(check.Capacity{CPU: 6, Seats: 1800, CPUUsed: 3 * baseCPU})
	o.Wave.Reference.ServerCPU.Mean = 3 * baseCPU
	for i := range o.Wave.Intervals {
		iv := &o.Wave.Intervals[i]
		lane := iv.ServerCPU - baseCPU
		iv.ServerCPU = 3*baseCPU + lane
		iv.Replicas = []check.ReplicaUse{
			{Name: "a:6443", CPU: baseCPU + lane, Capacity: 2, LaneCPU: lane},
			{Name: "b:6443", CPU: baseCPU, Capacity: 2}, {Name: "c:6443", CPU: baseCPU, Capacity: 2},
		}
		iv.Executing *= predict.Slowdown(iv.Utilization()) // the same CPU takes longer on a busier server
	}
	d := Analyze(o)
	cpu, _ := d.Resource(check.CPU)
	if cpu.Prediction == nil || cpu.Prediction.Total.Mean > 1.5 || len(cpu.Halts) != 1 ||
		!strings.Contains(cpu.Halts[0], "cpu: the busiest API server would carry about 40% of 200 agents, 0.518 cores") {
		t.Fatalf("prediction %v, halts %q", cpu.Prediction, cpu.Halts)
	}
	if !containsSome(d.Notes, "cpu: API server a:6443 carries 100% of the agents' load (an even spread over 3 would be 33%)") {
		t.Fatalf("notes %q", d.Notes)
	}
	// Measured: a replica already above its ceiling halts, whatever the sum.
	hot := wave1(0.0005)
	for i := range hot.Wave.Intervals {
		hot.Wave.Intervals[i].Replicas = []check.ReplicaUse{{Name: "a:6443", CPU: 1.7, Capacity: 2}, {Name: "b:6443", CPU: 0.1, Capacity: 2}}
	}
	hot.Wave.Limits = check.DefaultBudget.Limits(check.Capacity{CPU: 4, Seats: 1200})
	if d := Analyze(hot); !containsSome(d.Reasons, "cpu: API server a:6443 burns 1.70 cores of its 2.0 cores, above the 80% ceiling") {
		t.Fatalf("%s %q", d.Verdict, d.Reasons)
	}
}
