package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

var t0 = time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)

func lane() state.Lane {
	return state.Lane{FlowSchema: "bulkhead-rollout-obs.telemetry", PriorityLevel: "bulkhead-rollout-obs.telemetry"}
}

// halted is the seed's agent halted after wave 1 of a new DaemonSet on 200 nodes, as the state
// annotation holds it once the rollback finished.
func halted(t *testing.T) state.State {
	t.Helper()
	st, err := state.New(state.Start{ID: "20261125-060000-beef", Kind: state.Create, WavesSpec: "1%,5%,25%,100%",
		Targets: []int{2, 10, 50, 200}, Eligible: 200, Soak: time.Minute, BudgetPercent: 10, BudgetSeats: 59, CapacitySeats: 598,
		Lane: lane(), NodeLabel: "rollout.bulkhead.dev/obs.telemetry"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	st, err = st.WaveRolled(2, t0.Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	rec := state.WaveRecord{New: 2, Seats: 0.62, SE: 0.05, Samples: 6, BurstPeakPerAgent: 0.3,
		Predicted: 62, PredictedLow: 23, PredictedHigh: 101,
		Headline: "wave 1: 2 agents use 0.6 seats steady; 200 agents would need 62 seats (95%: 23–101) against a budget of 59 — halting",
		ReadyAt:  t0.Add(8 * time.Second), At: t0.Add(73 * time.Second)}
	st, err = st.Decided("halt", rec, "200 agents would need 62 seats (95%: 23–101) against a budget of 59", t0.Add(73*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	st, err = st.RolledBackAt(t0.Add(80 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAHaltedRolloutsReportSaysWhyWithItsNumbers(t *testing.T) {
	r := FromState("obs", "telemetry", halted(t))
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("the JSON report does not read back: %v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(back, r) {
		t.Fatalf("JSON round trip changed the report:\n%+v\n%+v", back, r)
	}
	if back.Phase != "RolledBack" || back.BudgetSeats != 59 || back.CapacitySeats != 598 || back.Eligible != 200 {
		t.Fatalf("summary: %+v", back)
	}
	if len(back.Steps) != 1 {
		t.Fatalf("%d steps, want the halting wave only", len(back.Steps))
	}
	s := back.Steps[0]
	if s.Wave != 1 || s.Label != "wave 1" || s.Nodes != 2 || s.New != 2 || s.Verdict != Halted || s.MeasuredSeats != 0.62 || s.Samples != 6 {
		t.Fatalf("step: %+v", s)
	}
	if s.Predicted == nil || *s.Predicted != (Interval{Seats: 62, Low: 23, High: 101}) {
		t.Fatalf("prediction: %+v", s.Predicted)
	}
	if s.ReadyToDecision != 65 {
		t.Fatalf("ready to decision %v s, want 65", s.ReadyToDecision)
	}
	want := "rolled back in wave 1 of 4: the new DaemonSet, its pods and its lane are gone (200 agents would need 62 seats (95%: 23–101) against a budget of 59)"
	if back.Outcome != want {
		t.Fatalf("outcome %q\nwant    %q", back.Outcome, want)
	}
	for _, key := range []string{`"readyToDecisionSeconds": 65`, `"verdict": "halt"`, `"budgetSeats": 59`, `"measuredSeats": 0.62`} {
		if !strings.Contains(buf.String(), key) {
			t.Fatalf("JSON lacks %s:\n%s", key, buf.String())
		}
	}
}

func TestTheHTMLPageSaysTheDecisionsInWords(t *testing.T) {
	st := halted(t)
	st.Reason = `SLO breached: <PUT> resource p99 1.1s > 1s`
	var buf bytes.Buffer
	if err := WriteHTML(&buf, FromState("obs", "telemetry", st)); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{
		"Rollout of DaemonSet obs/telemetry",
		"wave 1: 2 agents use 0.6 seats steady; 200 agents would need 62 seats (95%: 23–101) against a budget of 59 — halting",
		"(decided 65 s after the agents were Ready)",
		"10% = 59 seats of the API servers' 598",
		"SLO breached: &lt;PUT&gt; resource p99 1.1s &gt; 1s", // the reason, escaped
		"<svg", "62 (23–101)",
	} {
		if !strings.Contains(page, want) {
			t.Fatalf("page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<PUT>") || strings.Contains(page, "<script") {
		t.Fatalf("unescaped text or script in the page")
	}
}

// svgElement is one drawn mark of the chart.
type svgElement struct {
	name  string
	attrs map[string]string
}

func parseSVG(t *testing.T, r Report) []svgElement {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(string(Chart(r))))
	var out []svgElement
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("the chart is not well-formed SVG: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			e := svgElement{name: se.Name.Local, attrs: map[string]string{}}
			for _, a := range se.Attr {
				e.attrs[a.Name.Local] = a.Value
			}
			out = append(out, e)
		}
	}
}

// mark returns the y of the chart element of a class (for a wave, when wave ≥ 0), and its data-seats.
func mark(t *testing.T, els []svgElement, class string, wave int) (y, seats float64) {
	t.Helper()
	for _, e := range els {
		if e.attrs["class"] != class || (wave >= 0 && e.attrs["data-wave"] != strconv.Itoa(wave)) {
			continue
		}
		key := map[string]string{"line": "y1", "circle": "cy", "rect": "y"}[e.name]
		y, err := strconv.ParseFloat(e.attrs[key], 64)
		if err != nil {
			t.Fatalf("%s: %s=%q", class, key, e.attrs[key])
		}
		if e.name == "rect" {
			y += 4 // the marker's centre
		}
		seats, _ := strconv.ParseFloat(e.attrs["data-seats"], 64)
		return y, seats
	}
	t.Fatalf("no %s mark for wave %d in the chart", class, wave)
	return 0, 0
}

func TestTheChartPutsAPredictionOverBudgetAboveTheBudgetLine(t *testing.T) {
	els := parseSVG(t, FromState("obs", "telemetry", halted(t)))
	budgetY, budget := mark(t, els, "budget", -1)
	capacityY, capacity := mark(t, els, "capacity", -1)
	predictedY, predicted := mark(t, els, "predicted", 1)
	measuredY, measured := mark(t, els, "measured", 1)
	if budget != 59 || capacity != 598 || predicted != 62 || measured != 0.62 {
		t.Fatalf("values drawn: budget %v capacity %v predicted %v measured %v", budget, capacity, predicted, measured)
	}
	// SVG's y grows downwards: higher demand is a smaller y.
	if !(capacityY < predictedY && predictedY < budgetY && budgetY < measuredY) {
		t.Fatalf("vertical order capacity %v < predicted %v < budget %v < measured %v does not hold", capacityY, predictedY, budgetY, measuredY)
	}
	// Log scale: 0.62 → 62 is two decades, 59 → 598 is one.
	if ratio := (measuredY - predictedY) / (budgetY - capacityY); ratio < 1.95 || ratio > 2.05 {
		t.Fatalf("measured-to-predicted spans %.2f× the budget-to-capacity distance, want 2 (log scale)", ratio)
	}
}

// complete is an update that went through its baseline and two waves.
func complete(t *testing.T) state.State {
	t.Helper()
	st, err := state.New(state.Start{ID: "u1", Kind: state.Update, WavesSpec: "25%,100%", Targets: []int{3, 12}, Eligible: 12,
		Soak: 8 * time.Second, BudgetPercent: 10, BudgetSeats: 59, CapacitySeats: 598, Lane: lane(), OriginalHash: "abc"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	steps := []func(state.State) (state.State, error){
		func(s state.State) (state.State, error) {
			return s.Decided("proceed", state.WaveRecord{Old: 12, Seats: 0.012, SE: 0.001, Samples: 4, Headline: "baseline: 12 agents use 0.01 seats steady — proceeding"}, "", t0.Add(10*time.Second))
		},
		func(s state.State) (state.State, error) { return s.WaveRolled(3, t0.Add(12*time.Second)) },
		func(s state.State) (state.State, error) {
			return s.Decided("proceed", state.WaveRecord{Old: 9, New: 3, Seats: 0.013, SE: 0.001, Samples: 4, Predicted: 0.02, PredictedLow: 0.01, PredictedHigh: 0.03}, "", t0.Add(30*time.Second))
		},
		func(s state.State) (state.State, error) { return s.WaveRolled(12, t0.Add(40*time.Second)) },
		func(s state.State) (state.State, error) {
			return s.Decided("proceed", state.WaveRecord{New: 12, Seats: 0.02, SE: 0.002, Samples: 4, Predicted: 0.02, PredictedLow: 0.015, PredictedHigh: 0.025}, "", t0.Add(60*time.Second))
		},
		func(s state.State) (state.State, error) { return s.Finished(t0.Add(65 * time.Second)) },
	}
	for _, f := range steps {
		if st, err = f(st); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func TestACompleteUpdateReportsEveryStepInOrder(t *testing.T) {
	r := FromState("cli", "agent", complete(t))
	var labels []string
	for _, s := range r.Steps {
		labels = append(labels, s.Label+"/"+strconv.Itoa(s.Nodes)+"/"+s.Verdict)
	}
	if want := []string{"baseline/0/proceed", "wave 1/3/proceed", "wave 2/12/proceed"}; !reflect.DeepEqual(labels, want) {
		t.Fatalf("steps %v, want %v", labels, want)
	}
	if r.Steps[0].Predicted != nil || r.Steps[2].Predicted.Seats != 0.02 {
		t.Fatalf("predictions: baseline %+v, wave 2 %+v", r.Steps[0].Predicted, r.Steps[2].Predicted)
	}
	if !strings.HasPrefix(r.Outcome, "complete: all 12 eligible nodes") || r.Reason != "" {
		t.Fatalf("outcome %q reason %q", r.Outcome, r.Reason)
	}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	// A step without a headline still gets a line.
	if !strings.Contains(buf.String(), "<li>wave 1: proceed</li>") || strings.Contains(buf.String(), "halted because") {
		t.Fatalf("decisions:\n%s", buf.String())
	}
	if els := parseSVG(t, r); len(els) == 0 {
		t.Fatal("empty chart")
	}
}

// The report is a function of the annotation: the state read back from the DaemonSet gives the
// same report as the one the running process held.
func TestTheReportIsTheSameFromTheAnnotation(t *testing.T) {
	for _, st := range []state.State{halted(t), complete(t)} {
		ann, err := state.Encode(st)
		if err != nil {
			t.Fatal(err)
		}
		back, found, err := state.Decode(ann)
		if err != nil || !found {
			t.Fatalf("decode: %v %v", found, err)
		}
		a, b := FromState("ns", "ds", st), FromState("ns", "ds", back)
		var ja, jb bytes.Buffer
		if err := WriteJSON(&ja, a); err != nil {
			t.Fatal(err)
		}
		if err := WriteJSON(&jb, b); err != nil {
			t.Fatal(err)
		}
		if ja.String() != jb.String() {
			t.Fatalf("report from the annotation differs:\n%s\n%s", ja.String(), jb.String())
		}
	}
}

func TestAnUnfinishedRolloutSaysWhereItStands(t *testing.T) {
	st, err := state.New(state.Start{ID: "p", Kind: state.Create, WavesSpec: "25%,100%", Targets: []int{3, 12}, Eligible: 12,
		Soak: time.Minute, BudgetPercent: 10, BudgetSeats: 59, Lane: lane(), NodeLabel: "l"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ = st.WaveRolled(3, t0)
	paused, _ := st.Pause(t0)
	r := FromState("ns", "ds", paused)
	if r.Outcome != "paused in wave 1 of 2 (Soaking), 3 of 12 nodes switched" || len(r.Steps) != 0 || r.CapacitySeats != 0 {
		t.Fatalf("paused: %+v", r)
	}
	els := parseSVG(t, r)
	for _, e := range els {
		if e.attrs["class"] == "capacity" {
			t.Fatal("a capacity line without a known capacity")
		}
	}
	if _, seats := mark(t, els, "budget", -1); seats != 59 {
		t.Fatalf("budget line at %v", seats)
	}
}

func TestReportFiles(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ in, html, json string }{
		{"r/rollout.html", "r/rollout.html", "r/rollout.json"},
		{"r/rollout.json", "", "r/rollout.json"},
		{"r/out", "r/out", "r/out.json"},
	} {
		if h, j := Paths(tt.in); h != tt.html || j != tt.json {
			t.Errorf("Paths(%q) = %q, %q; want %q, %q", tt.in, h, j, tt.html, tt.json)
		}
	}
	if err := CheckPath(filepath.Join(dir, "missing", "r.html")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("a missing directory: %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "taken.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckPath(filepath.Join(dir, "taken.html")); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("a directory in the way: %v", err)
	}
	file := filepath.Join(dir, "rollout.html")
	if err := CheckPath(file); err != nil {
		t.Fatal(err)
	}
	written, err := WriteFiles(file, FromState("obs", "telemetry", halted(t)))
	if err != nil || len(written) != 2 {
		t.Fatalf("WriteFiles: %v %v", written, err)
	}
	html, _ := os.ReadFile(written[0])
	data, _ := os.ReadFile(written[1])
	var r Report
	if err := json.Unmarshal(data, &r); err != nil || r.Steps[0].Predicted.Seats != 62 || !strings.Contains(string(html), "<svg") {
		t.Fatalf("files: %v, %+v", err, r)
	}
}
