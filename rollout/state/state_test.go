package state

import (
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/predict"
)

var t0 = time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func userStrategy() appsv1.DaemonSetUpdateStrategy {
	maxUnavailable := intstr.FromString("10%")
	return appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &maxUnavailable}}
}

func start(kind Kind) Start {
	st := Start{
		ID: "r-1", Kind: kind, WavesSpec: "1%,5%,100%", Targets: []int{2, 10, 200}, Eligible: 200,
		Soak: time.Minute, Budget: check.Budget{check.CPU: 25, check.Memory: 25, check.Seats: 10},
		Limits:           map[check.Resource]check.Limit{check.Seats: {Resource: check.Seats, Share: 10, Capacity: 600, Value: 60, From: "APF"}},
		Lane:             Lane{FlowSchema: "bulkhead-obs.agent", PriorityLevel: "bulkhead-obs.agent"},
		OriginalStrategy: userStrategy(),
	}
	if kind == Create {
		st.NodeLabel = "rollout.bulkhead.dev/obs.agent"
	} else {
		st.OriginalHash = "6b7f9c"
	}
	return st
}

func mustNew(t *testing.T, kind Kind) State {
	t.Helper()
	s, err := New(start(kind), t0)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// rolling is a new DaemonSet's rollout past its baseline: wave 1 rolling.
func rolling(t *testing.T) State {
	t.Helper()
	return mustFor(t)(mustNew(t, Create).Decided(analyze.Proceed, WaveRecord{}, "", t0))
}

// seats is a wave record of a steady seat demand.
func seats(old, new int, mean, se float64, samples int) WaveRecord {
	return WaveRecord{Old: old, New: new, Resources: map[check.Resource]check.Measured{
		check.Seats: {Steady: predict.Estimate{Mean: mean, SE: se, Samples: samples}}}}
}

// roundTrip is what a kill -9 does to the state: only the annotation survives.
func roundTrip(t *testing.T, s State) State {
	t.Helper()
	ann, err := Encode(s)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	got, found, err := Decode(ann)
	if err != nil || !found {
		t.Fatalf("Decode: found %v, %v", found, err)
	}
	return got
}

// mustFor returns a helper that unwraps a transition's result, failing t on error.
func mustFor(t *testing.T) func(State, error) State {
	return func(s State, err error) State {
		t.Helper()
		if err != nil {
			t.Fatalf("transition: %v", err)
		}
		return s
	}
}

func TestEncodeDecodeRoundTripsEveryField(t *testing.T) {
	s := mustNew(t, Update)
	s.Paused = true
	s.History = []WaveRecord{seats(200, 0, 20, 0.4, 12)}
	s.Reference = &check.Reference{ServerCPU: predict.Estimate{Mean: 0.2, SE: 0.01, Samples: 6}}
	s.Reason = "none yet"
	s.Held, s.Revision = true, "3f2a9c0d1e2b4a5f"
	s.Before = []FlowBaseline{{FlowSchema: "service-accounts", PriorityLevel: "workload-low", RejectedPerSec: 0.5, WaitP99: Duration{250 * time.Millisecond}}}
	if got := roundTrip(t, s); !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip changed the state:\n got %+v\nwant %+v", got, s)
	}
	ann, err := Encode(s)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if raw := ann[Annotation]; !strings.Contains(raw, `"soak":"1m0s"`) || !strings.Contains(raw, `"phase":"Baseline"`) {
		t.Fatalf("the annotation should read well in kubectl: %s", raw)
	}
}

func TestDecodeWithoutAnnotationIsNotFound(t *testing.T) {
	s, found, err := Decode(map[string]string{"other": "x"})
	if found || err != nil || !reflect.DeepEqual(s, State{}) {
		t.Fatalf("Decode = %+v, %v, %v; want not found", s, found, err)
	}
}

func TestDecodeNamesWhatIsWrongWithADamagedState(t *testing.T) {
	good, err := Encode(rolling(t))
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	edit := func(old, new string) map[string]string {
		return map[string]string{Annotation: strings.Replace(good[Annotation], old, new, 1)}
	}
	tests := []struct {
		name    string
		ann     map[string]string
		wantErr string
	}{
		{"not JSON", map[string]string{Annotation: "{oops"}, "is not a rollout state"},
		{"another release", edit(`"v":3`, `"v":7`), "state version 7 is not supported"},
		{"unknown phase", edit(`"phase":"Rolling"`, `"phase":"Dancing"`), `phase "Dancing" is unknown`},
		{"unknown field", edit(`"v":3,`, `"v":3,"extra":true,`), `unknown field "extra"`},
		{"targets not increasing", edit(`"targets":[2,10,200]`, `"targets":[10,2,200]`), "must strictly increase"},
		{"wave out of range", edit(`"wave":1`, `"wave":9`), "wave 9 is outside 0..3"},
		{"lane missing", edit(`"flowSchema":"bulkhead-obs.agent"`, `"flowSchema":""`), "lane names are missing"},
		{"bad duration", edit(`"soak":"1m0s"`, `"soak":"soon"`), `duration "soon"`},
		{"create without node label", edit(`"nodeLabel":"rollout.bulkhead.dev/obs.agent",`, ``), "needs its node label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, found, err := Decode(tt.ann)
			if !found || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("found %v, error %v; want found and an error containing %q", found, err, tt.wantErr)
			}
		})
	}
}

func TestNewRejectsBadStarts(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Start)
		wantErr string
	}{
		{"zero soak", func(s *Start) { s.Soak = 0 }, "soak 0s must be positive"},
		{"budget over 100%", func(s *Start) { s.Budget = check.Budget{check.Seats: 150} }, "budget seats 150% must be within (0, 100%]"},
		{"zero budget", func(s *Start) { s.Budget = check.Budget{check.CPU: 0} }, "budget cpu 0% must be within (0, 100%]"},
		{"no budget", func(s *Start) { s.Budget = nil }, "no budget"},
		{"update without revision", func(s *Start) { s.OriginalHash = "" }, "needs the original revision hash"},
		{"targets beyond the fleet", func(s *Start) { s.Targets = []int{2, 300} }, "within 1..200 eligible nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := start(Update)
			tt.change(&st)
			if _, err := New(st, t0); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// A new DaemonSet through all its waves, with a kill -9 (encode, decode) between every step:
// the persisted state always calls for the same next action.
func TestACreateRolloutWalksItsWavesAndSurvivesRestartsAtEveryStep(t *testing.T) {
	must := mustFor(t)
	s := mustNew(t, Create)
	var trail []string
	record := func(s State) State {
		s = roundTrip(t, s)
		trail = append(trail, string(s.Phase)+"/"+string(s.NextAction()))
		return s
	}
	s = record(s)
	s = record(must(s.Decided(analyze.Proceed, WaveRecord{}, "", at(0))))
	for i, target := range []int{2, 10, 200} {
		s = record(must(s.WaveRolled(target, at(10*i+1))))
		s = record(must(s.Decided(analyze.Hold, WaveRecord{}, "", at(10*i+2))))
		s = record(must(s.Decided(analyze.Proceed, seats(0, target, 0.01*float64(target), 0.005, 10), "", at(10*i+3))))
	}
	s = record(must(s.Finished(at(99))))
	want := []string{
		"Baseline/soak", "Rolling/roll-wave",
		"Soaking/soak", "Soaking/soak", "Rolling/roll-wave",
		"Soaking/soak", "Soaking/soak", "Rolling/roll-wave",
		"Soaking/soak", "Soaking/soak", "Finishing/finish",
		"Complete/none",
	}
	if !reflect.DeepEqual(trail, want) {
		t.Fatalf("trail = %v\nwant %v", trail, want)
	}
	if len(s.History) != 4 || s.History[3].Wave != 3 || s.Done != 200 {
		t.Fatalf("history %+v, done %d", s.History, s.Done)
	}
	if recs := s.Records(); len(recs) != 4 || recs[2].New != 10 || recs[2].Resources[check.Seats].Steady.Mean != 0.1 {
		t.Fatalf("records %+v", recs)
	}
}

func TestAnUpdateBeginsWithABaselineAndHaltsIntoARollback(t *testing.T) {
	must := mustFor(t)
	s := mustNew(t, Update)
	if s.Phase != Baseline || s.NextAction() != Soak || s.Wave != 0 {
		t.Fatalf("an update starts by soaking a baseline, got %s/%s wave %d", s.Phase, s.NextAction(), s.Wave)
	}
	s = must(s.Decided(analyze.Proceed, seats(200, 0, 20, 0.4, 12), "", at(60)))
	if s.Phase != Rolling || s.Wave != 1 || !s.WaveStarted.Equal(at(60)) {
		t.Fatalf("after the baseline: %s wave %d started %v", s.Phase, s.Wave, s.WaveStarted)
	}
	s = must(s.WaveRolled(2, at(70)))
	halting := seats(198, 2, 22, 0.5, 4)
	halting.Headline = "wave 1: … — halting"
	halting.Resources[check.Seats] = check.Measured{Steady: halting.Resources[check.Seats].Steady, Predicted: &check.Interval95{Mean: 200, Low: 190, High: 210}}
	s = must(s.Decided(analyze.Halt, halting, "200 agents would need 200 seats", at(100)))
	s = roundTrip(t, s)
	if s.Phase != RollingBack || s.NextAction() != Rollback || s.Reason != "200 agents would need 200 seats" {
		t.Fatalf("after a halt: %s/%s %q", s.Phase, s.NextAction(), s.Reason)
	}
	if h := s.Halted; h == nil || h.Wave != 1 || h.Resources[check.Seats].Predicted.Mean != 200 || h.Headline != "wave 1: … — halting" {
		t.Fatalf("the halting wave's record is kept for the report: %+v", h)
	}
	if _, err := s.Pause(at(101)); err == nil || !strings.Contains(err.Error(), "a rollback cannot be paused") {
		t.Fatalf("pausing a rollback: %v", err)
	}
	s = must(s.RolledBackAt(at(120)))
	if s.NextAction() != None || !s.Terminal() {
		t.Fatalf("after rollback: %s/%s", s.Phase, s.NextAction())
	}
	if recs := s.Records(); len(recs) != 1 || recs[0].Old != 200 {
		t.Fatalf("the halted wave must not enter the history: %+v", recs)
	}
}

func TestPauseResumeAndAbort(t *testing.T) {
	must := mustFor(t)
	s := rolling(t)
	s = must(s.WaveRolled(2, at(10)))
	s = must(s.Pause(at(20)))
	if s.NextAction() != Wait {
		t.Fatalf("paused: action %s, want wait", s.NextAction())
	}
	s = must(s.Pause(at(21))) // pausing twice is fine
	s = must(s.Resume(at(30)))
	if s.NextAction() != Soak || !s.SoakStarted.Equal(at(30)) {
		t.Fatalf("resumed: action %s, soak started %v; the soak restarts at resume", s.NextAction(), s.SoakStarted)
	}
	paused := must(s.Pause(at(40)))
	s = must(paused.Abort("aborted by user", at(50)))
	if s.Phase != RollingBack || s.Paused || s.NextAction() != Rollback {
		t.Fatalf("abort of a paused rollout: %s paused=%v action %s", s.Phase, s.Paused, s.NextAction())
	}
	again := must(s.Abort("again", at(51)))
	if again.Reason != "aborted by user" {
		t.Fatalf("a second abort must not rewrite the reason: %q", again.Reason)
	}
	done := must(s.RolledBackAt(at(60)))
	for name, f := range map[string]func() (State, error){
		"resume": func() (State, error) { return done.Resume(at(61)) },
		"abort":  func() (State, error) { return done.Abort("x", at(61)) },
		"pause":  func() (State, error) { return done.Pause(at(61)) },
	} {
		if _, err := f(); err == nil || !strings.Contains(err.Error(), "already RolledBack") {
			t.Fatalf("%s after rollback: %v", name, err)
		}
	}
}

func TestTransitionsOutOfOrderAreRefused(t *testing.T) {
	must := mustFor(t)
	s := rolling(t)
	tests := []struct {
		name    string
		f       func() (State, error)
		wantErr string
	}{
		{"decide while rolling", func() (State, error) { return s.Decided(analyze.Proceed, WaveRecord{}, "", t0) }, "needs a soaking wave, but the rollout is in phase Rolling"},
		{"roll short of the target", func() (State, error) { return s.WaveRolled(1, t0) }, "wave 1 has 1 of its 2 nodes switched"},
		{"finish early", func() (State, error) { return s.Finished(t0) }, "cannot complete a rollout in phase Rolling"},
		{"rolled back without a rollback", func() (State, error) { return s.RolledBackAt(t0) }, "cannot mark a rollout in phase Rolling rolled back"},
		{"unknown verdict", func() (State, error) {
			soaking := must(s.WaveRolled(2, t0))
			return soaking.Decided("maybe", WaveRecord{}, "", t0)
		}, `unknown verdict "maybe"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.f(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestASoakIsFreshUnlessAResumeRestartedIt(t *testing.T) {
	must := mustFor(t)
	s := rolling(t)
	s = must(s.WaveRolled(2, at(5)))
	if !roundTrip(t, s).FreshSoak() {
		t.Fatalf("a wave's own soak must be fresh (it sees the start-up burst)")
	}
	s = must(s.Resume(at(30)))
	if roundTrip(t, s).FreshSoak() {
		t.Fatalf("a soak restarted by resume is not fresh")
	}
	s = must(s.Decided(analyze.Proceed, seats(0, 2, 0.1, 0.01, 5), "", at(90)))
	if !s.FreshSoak() || !s.WaveStarted.Equal(at(90)) {
		t.Fatalf("the next wave starts a fresh soak")
	}
}

func TestBatchComesFromTheLastSoakedWave(t *testing.T) {
	must := mustFor(t)
	s := rolling(t)
	if s.Batch() != 0 {
		t.Fatalf("wave 1 has no measurement to size batches by: %d", s.Batch())
	}
	s = must(s.WaveRolled(2, at(1)))
	next := seats(0, 2, 0.1, 0.01, 9)
	next.MaxNextWave = 3
	s = must(s.Decided(analyze.Proceed, next, "", at(2)))
	if got := roundTrip(t, s).Batch(); got != 3 {
		t.Fatalf("Batch = %d, want 3", got)
	}
}

// A rollout begun by a bulkhead that gated in seats only (state version 1) is read and goes on,
// its budget and each wave's measurement carried over as seats.
func TestAVersionOneStateIsStillRead(t *testing.T) {
	v1 := `{"v":1,"id":"20261125-040000-beef","kind":"create","phase":"Soaking","waves":"1%,5%,100%","targets":[2,10,200],` +
		`"eligible":200,"wave":2,"done":10,"waveStarted":"2026-11-25T04:01:00Z","soakStarted":"2026-11-25T04:01:00Z","soak":"1m0s",` +
		`"budgetPercent":10,"budgetSeats":59,"capacitySeats":598,"lane":{"flowSchema":"bulkhead-obs.agent","priorityLevel":"bulkhead-obs.agent"},` +
		`"nodeLabel":"rollout.bulkhead.dev/obs.agent","originalStrategy":{"type":"RollingUpdate"},` +
		`"history":[{"wave":1,"old":0,"new":2,"seats":0.6,"se":0.1,"samples":9,"burst":0.4,"maxNextWave":5,"predicted":62,"predictedLow":23,"predictedHigh":101,"headline":"wave 1: … — proceeding"}],` +
		`"updated":"2026-11-25T04:01:30Z"}`
	s, found, err := Decode(map[string]string{Annotation: v1})
	if err != nil || !found {
		t.Fatalf("Decode of a version 1 state: found %v, %v", found, err)
	}
	if s.Version != version || s.Phase != Soaking || s.Wave != 2 || s.Done != 10 || s.NextAction() != Soak {
		t.Fatalf("carried over: v%d %s wave %d done %d", s.Version, s.Phase, s.Wave, s.Done)
	}
	if l := s.Limits[check.Seats]; s.Budget[check.Seats] != 10 || l.Value != 59 || l.Capacity != 598 || len(s.Budget) != 1 {
		t.Fatalf("budget %v, seat limit %+v: want 10%% of 598 seats = 59, seats only", s.Budget, l)
	}
	want := check.Measured{Steady: predict.Estimate{Mean: 0.6, SE: 0.1, Samples: 9}, BurstPeakPerAgent: 0.4,
		Predicted: &check.Interval95{Mean: 62, Low: 23, High: 101}}
	if got := s.History[0].Resources[check.Seats]; !reflect.DeepEqual(got, want) || s.History[0].MaxNextWave != 5 {
		t.Fatalf("wave 1's record %+v, want %+v", got, want)
	}
	if again := roundTrip(t, s); !reflect.DeepEqual(again, s) {
		t.Fatalf("written back as version %d and read again, it changed:\n got %+v\nwant %+v", version, again, s)
	}
}

// A rollout begun before the controller (state version 2: no mode, hold or revision) is read as
// a guarded rollout of the CLI and goes on.
func TestAVersionTwoStateIsReadAsAGuardedRolloutOfTheCLI(t *testing.T) {
	v2 := `{"v":2,"id":"20261125-040000-beef","kind":"update","phase":"Rolling","waves":"1%,5%,100%","targets":[2,10,200],` +
		`"eligible":200,"wave":1,"done":0,"soak":"1m0s","budget":{"cpu":25,"memory":25,"seats":10},"limits":{},` +
		`"lane":{"flowSchema":"bulkhead-obs.agent","priorityLevel":"bulkhead-obs.agent"},"originalStrategy":{"type":"RollingUpdate"},` +
		`"originalHash":"6b7f9c","updated":"2026-11-25T04:01:30Z"}`
	s, found, err := Decode(map[string]string{Annotation: v2})
	if err != nil || !found {
		t.Fatalf("Decode of a version 2 state: found %v, %v", found, err)
	}
	if s.Version != version || s.Observing() || s.Held || s.Revision != "" || s.NextAction() != RollWave {
		t.Fatalf("carried over: v%d mode %q held %v revision %q next %s", s.Version, s.Mode, s.Held, s.Revision, s.NextAction())
	}
	if again := roundTrip(t, s); !reflect.DeepEqual(again, s) {
		t.Fatalf("written back and read again, it changed:\n got %+v\nwant %+v", again, s)
	}
}

// An observed rollout waits for the DaemonSet controller, soaks the whole fleet and finishes
// whatever the verdict: a halt is recorded as what guard would have done, never acted on.
func TestAnObservedRolloutRecordsTheHaltItWouldHaveMadeAndFinishes(t *testing.T) {
	must := mustFor(t)
	st := start(Update)
	st.Mode, st.Revision = Observe, "3f2a"
	s := must(New(st, t0))
	if s.Phase != Rolling || s.Wave != 1 || !reflect.DeepEqual(s.Targets, []int{200}) || s.NextAction() != RollWave {
		t.Fatalf("an observed rollout begins waiting for the DaemonSet controller at 100%%: %s wave %d targets %v", s.Phase, s.Wave, s.Targets)
	}
	s = roundTrip(t, must(s.Observed(200, at(90))))
	if s.Phase != Soaking || s.Done != 200 || !s.SoakStarted.Equal(at(90)) || !s.FreshSoak() {
		t.Fatalf("observed rolled: %s done %d soak from %v", s.Phase, s.Done, s.SoakStarted)
	}
	rec := seats(0, 200, 90, 3, 9)
	rec.Headline = "wave 1: 200 agents use 90 seats — halting"
	s = roundTrip(t, must(s.Decided(analyze.Halt, rec, "seats: over the budget", at(150))))
	if s.Phase != Finishing || s.WouldHalt == nil || s.WouldHalt.Headline != rec.Headline || s.Reason != "seats: over the budget" || s.Halted != nil {
		t.Fatalf("an observed halt: %s, would-halt %+v, reason %q, halted %+v", s.Phase, s.WouldHalt, s.Reason, s.Halted)
	}
	if s = must(s.Finished(at(151))); s.Phase != Complete || len(s.History) != 1 {
		t.Fatalf("finished: %s with %d records", s.Phase, len(s.History))
	}
	if _, err := must(New(st, t0)).Decided(analyze.Proceed, rec, "", t0); err == nil {
		t.Fatal("a verdict before the DaemonSet controller rolled the fleet was accepted")
	}
	held := st
	held.Held = true
	if _, err := New(held, t0); err == nil {
		t.Fatal("an observed rollout of a held DaemonSet was accepted")
	}
	aborted := must(must(New(st, t0)).Abort("superseded", at(5)))
	if aborted.Phase != Finishing || aborted.NextAction() != Finish {
		t.Fatalf("aborting an observation: %s, next %s; want it to stop measuring and finish", aborted.Phase, aborted.NextAction())
	}
}
