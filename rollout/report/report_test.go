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

	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/predict"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

var t0 = time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)

// limits are 2 cores and 598 seats at the default budget; the memory limit is not visible.
var limits = check.DefaultBudget.Limits(check.Capacity{CPU: 2, CPUFrom: "GOMAXPROCS", Seats: 598})

// record is a wave's record with one resource measured (and, when predicted > 0, predicted).
func record(old, new int, r check.Resource, mean, se float64, predicted, low, high float64) state.WaveRecord {
	m := check.Measured{Steady: predict.Estimate{Mean: mean, SE: se, Samples: 4}}
	if predicted > 0 {
		m.Predicted = &check.Interval95{Mean: predicted, Low: low, High: high}
	}
	return state.WaveRecord{Old: old, New: new, Resources: map[check.Resource]check.Measured{r: m}}
}

// begun is a new state past its baseline.
func begun(t *testing.T, start state.Start) state.State {
	t.Helper()
	st, err := state.New(start, t0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Kind == state.Update {
		return st
	}
	if st, err = st.Decided("proceed", state.WaveRecord{Headline: "baseline: 0 agents … — proceeding"}, "", t0); err != nil {
		t.Fatal(err)
	}
	return st
}

func lane() state.Lane {
	return state.Lane{FlowSchema: "bulkhead-rollout-obs.telemetry", PriorityLevel: "bulkhead-rollout-obs.telemetry"}
}

// halted is the seed's agent halted after wave 1 of a new DaemonSet on 200 nodes, as the state
// annotation holds it once the rollback finished.
func halted(t *testing.T) state.State {
	t.Helper()
	st := begun(t, state.Start{ID: "20261125-060000-beef", Kind: state.Create, WavesSpec: "1%,5%,25%,100%",
		Targets: []int{2, 10, 50, 200}, Eligible: 200, Soak: time.Minute, Budget: check.DefaultBudget, Limits: limits,
		Lane: lane(), NodeLabel: "rollout.bulkhead.dev/obs.telemetry"})
	st, err := st.WaveRolled(2, t0.Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	rec := record(0, 2, check.CPU, 0.05, 0.005, 5, 3.99, 6.01)
	rec.Resources[check.Seats] = check.Measured{Steady: predict.Estimate{Mean: 0.44, SE: 0.02, Samples: 6}, BurstPeakPerAgent: 0.3,
		Predicted: &check.Interval95{Mean: 880, Low: 800, High: 960}}
	rec.Utilization = 0.08
	rec.Headline = "wave 1: 2 agents use 0.0500 cores; 200 agents would need 5.00 cores (95%: 3.99–6.01) of the API servers' 2.0 cores — budget 0.500 cores (25%) — halting"
	rec.ReadyAt, rec.At = t0.Add(8*time.Second), t0.Add(73*time.Second)
	st, err = st.Decided("halt", rec, "cpu: 200 agents would need 5.00 cores (95%: 3.99–6.01), over the budget of 0.500 cores", t0.Add(73*time.Second))
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
	if back.Phase != "RolledBack" || back.Eligible != 200 || len(back.Budgets) != 3 {
		t.Fatalf("summary: %+v", back)
	}
	if cpu := back.Budgets[0]; cpu.Resource != "cpu" || cpu.Unit != "cores" || cpu.Limit != 0.5 || cpu.Capacity != 2 || !cpu.Gated {
		t.Fatalf("CPU budget: %+v", cpu)
	}
	if mem := back.Budgets[1]; mem.Gated || !strings.Contains(mem.Words, "pass --apiserver-memory") {
		t.Fatalf("a memory limit that could not be seen is reported, not gated: %+v", mem)
	}
	if len(back.Steps) != 2 || back.Steps[0].Label != "baseline" {
		t.Fatalf("steps %+v, want the baseline and the halting wave", back.Steps)
	}
	s := back.Steps[1]
	if s.Wave != 1 || s.Label != "wave 1" || s.Nodes != 2 || s.New != 2 || s.Verdict != Halted || s.Utilization != 0.08 {
		t.Fatalf("step: %+v", s)
	}
	if cpu := s.Resources["cpu"]; cpu.Measured != 0.05 || cpu.Samples != 4 || cpu.Predicted == nil || *cpu.Predicted != (Interval{Mean: 5, Low: 3.99, High: 6.01}) {
		t.Fatalf("CPU: %+v", cpu)
	}
	if seats := s.Resources["seats"]; seats.Measured != 0.44 || seats.BurstPerAgent != 0.3 || seats.Predicted.Mean != 880 {
		t.Fatalf("seats: %+v", seats)
	}
	if s.ReadyToDecision != 65 {
		t.Fatalf("ready to decision %v s, want 65", s.ReadyToDecision)
	}
	want := "rolled back in wave 1 of 4: the new DaemonSet, its pods and its lane are gone (cpu: 200 agents would need 5.00 cores (95%: 3.99–6.01), over the budget of 0.500 cores)"
	if back.Outcome != want {
		t.Fatalf("outcome %q\nwant    %q", back.Outcome, want)
	}
	for _, key := range []string{`"readyToDecisionSeconds": 65`, `"verdict": "halt"`, `"resource": "cpu"`, `"measured": 0.05`} {
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
		"wave 1: 2 agents use 0.0500 cores; 200 agents would need 5.00 cores (95%: 3.99–6.01) of the API servers&#39; 2.0 cores — budget 0.500 cores (25%) — halting",
		"(decided 65 s after the agents were Ready)",
		"0.500 cores (25% of the API servers&#39; 2.0 cores, from GOMAXPROCS)",
		"SLO breached: &lt;PUT&gt; resource p99 1.1s &gt; 1s", // the reason, escaped
		`data-resource="cpu"`, `data-resource="seats"`, `data-resource="memory"`, "not gated: capacity unknown",
		"5.00 cores (95%: 3.99–6.01)", "8%",
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

func parseSVG(t *testing.T, r Report, resource string) []svgElement {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(string(Chart(r, resource))))
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

// mark returns the y of the chart element of a class (for a wave, when wave ≥ 0), and its data-value.
func mark(t *testing.T, els []svgElement, class string, wave int) (y, value float64) {
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
		value, _ := strconv.ParseFloat(e.attrs["data-value"], 64)
		return y, value
	}
	t.Fatalf("no %s mark for wave %d in the chart", class, wave)
	return 0, 0
}

func TestTheChartPutsAPredictionOverBudgetAboveTheBudgetLine(t *testing.T) {
	els := parseSVG(t, FromState("obs", "telemetry", halted(t)), "cpu")
	budgetY, budget := mark(t, els, "budget", -1)
	capacityY, capacity := mark(t, els, "capacity", -1)
	predictedY, predicted := mark(t, els, "predicted", 1)
	measuredY, measured := mark(t, els, "measured", 1)
	if budget != 0.5 || capacity != 2 || predicted != 5 || measured != 0.05 {
		t.Fatalf("values drawn: budget %v capacity %v predicted %v measured %v", budget, capacity, predicted, measured)
	}
	// SVG's y grows downwards: higher demand is a smaller y.
	if !(predictedY < capacityY && capacityY < budgetY && budgetY < measuredY) {
		t.Fatalf("vertical order predicted %v < capacity %v < budget %v < measured %v does not hold", predictedY, capacityY, budgetY, measuredY)
	}
	// Log scale: 0.05 → 5 is two decades, 0.5 → 2 is 0.6 of one.
	if ratio := (measuredY - predictedY) / (budgetY - capacityY); ratio < 3.25 || ratio > 3.4 {
		t.Fatalf("measured-to-predicted spans %.2f× the budget-to-capacity distance, want 2/log10(4) = 3.32 (log scale)", ratio)
	}
}

// complete is an update that went through its baseline and two waves.
func complete(t *testing.T) state.State {
	t.Helper()
	st := begun(t, state.Start{ID: "u1", Kind: state.Update, WavesSpec: "25%,100%", Targets: []int{3, 12}, Eligible: 12,
		Soak: 8 * time.Second, Budget: check.DefaultBudget, Limits: limits, Lane: lane(), OriginalHash: "abc"})
	baseline := record(12, 0, check.CPU, 0.012, 0.001, 0, 0, 0)
	baseline.Headline = "baseline: 12 agents use 0.0120 cores … — proceeding"
	steps := []func(state.State) (state.State, error){
		func(s state.State) (state.State, error) {
			return s.Decided("proceed", baseline, "", t0.Add(10*time.Second))
		},
		func(s state.State) (state.State, error) { return s.WaveRolled(3, t0.Add(12*time.Second)) },
		func(s state.State) (state.State, error) {
			return s.Decided("proceed", record(9, 3, check.CPU, 0.013, 0.001, 0.02, 0.01, 0.03), "", t0.Add(30*time.Second))
		},
		func(s state.State) (state.State, error) { return s.WaveRolled(12, t0.Add(40*time.Second)) },
		func(s state.State) (state.State, error) {
			return s.Decided("proceed", record(0, 12, check.CPU, 0.02, 0.002, 0.02, 0.015, 0.025), "", t0.Add(60*time.Second))
		},
		func(s state.State) (state.State, error) { return s.Finished(t0.Add(65 * time.Second)) },
	}
	var err error
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
	if r.Steps[0].Resources["cpu"].Predicted != nil || r.Steps[2].Resources["cpu"].Predicted.Mean != 0.02 {
		t.Fatalf("predictions: baseline %+v, wave 2 %+v", r.Steps[0].Resources, r.Steps[2].Resources)
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
	if els := parseSVG(t, r, "cpu"); len(els) == 0 {
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
	st := begun(t, state.Start{ID: "p", Kind: state.Create, WavesSpec: "25%,100%", Targets: []int{3, 12}, Eligible: 12,
		Soak: time.Minute, Budget: check.DefaultBudget, Limits: limits, Lane: lane(), NodeLabel: "l"})
	st, _ = st.WaveRolled(3, t0)
	paused, _ := st.Pause(t0)
	r := FromState("ns", "ds", paused)
	if r.Outcome != "paused in wave 1 of 2 (Soaking), 3 of 12 nodes switched" || len(r.Steps) != 1 {
		t.Fatalf("paused: %+v", r)
	}
	for _, e := range parseSVG(t, r, "memory") {
		if e.attrs["class"] == "capacity" || e.attrs["class"] == "budget" {
			t.Fatal("a capacity or budget line without a known capacity")
		}
	}
	if _, seats := mark(t, parseSVG(t, r, "seats"), "budget", -1); seats < 59.79 || seats > 59.81 {
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
	if err := json.Unmarshal(data, &r); err != nil || r.Steps[1].Resources["cpu"].Predicted.Mean != 5 || !strings.Contains(string(html), "<svg") {
		t.Fatalf("files: %v, %+v", err, r)
	}
}
