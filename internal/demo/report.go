package demo

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/report"
)

// WriteTable prints the runs side by side.
func WriteTable(w io.Writer, runs []Run) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	header := []string{""}
	for _, r := range runs {
		header = append(header, string(r.Mode))
	}
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	row := func(label string, cell func(Run) string) {
		cells := []string{label}
		for _, r := range runs {
			cells = append(cells, cell(r))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	row("probe GET p99, worst sample", func(r Run) string { return seconds(r.Summary.ProbeP99Max) })
	row("time outside the 1 s SLO", func(r Run) string { return fmt.Sprintf("%.0fs", r.Summary.SecondsOverSLO) })
	row("SLO first broken", func(r Run) string {
		if r.Summary.UnusableAfter < 0 {
			return "never"
		}
		return fmt.Sprintf("after %.0fs", r.Summary.UnusableAfter)
	})
	row("kube-apiserver deaths (memory limit)", func(r Run) string { return fmt.Sprint(r.Summary.APIServerRestarts) })
	row("requests rejected by APF", func(r Run) string { return fmt.Sprintf("%.0f", r.Summary.Rejected) })
	for _, server := range []string{CoreDNS, BulkheadDNS} {
		row(server+" answered", func(r Run) string { return ratioText(r.Summary.DNSSuccess[server]) })
		row("  after its restart", func(r Run) string { return ratioText(r.Summary.DNSSuccessAfterRestart[server]) })
	}
	row("rollout decision", func(r Run) string { return rolloutDecision(r.RolloutReport) })
	for _, res := range check.Resources {
		row(fmt.Sprintf("  %s at 100%%, predicted", res), func(r Run) string { return rolloutPrediction(r.RolloutReport, string(res)) })
	}
	row("  halt to rolled back", func(r Run) string { return rolloutRollbackTime(r.RolloutReport) })
	row("nodes running the agent, most", func(r Run) string { return fmt.Sprintf("%d of %d", r.Summary.MaxAgentNodes, r.Nodes) })
	row("nodes running the agent, at the end", func(r Run) string { return fmt.Sprintf("%d of %d", r.Summary.FinalAgentNodes, r.Nodes) })
	return tw.Flush()
}

// lastStep is the rollout's deciding step, if it has one.
func lastStep(r *report.Report) (report.Step, bool) {
	if r == nil || len(r.Steps) == 0 {
		return report.Step{}, false
	}
	return r.Steps[len(r.Steps)-1], true
}

func rolloutDecision(r *report.Report) string {
	s, ok := lastStep(r)
	switch {
	case r == nil:
		return "-"
	case !ok:
		return r.Phase
	case s.Verdict == report.Halted:
		return fmt.Sprintf("halted at %s (%d of %d nodes)", s.Label, s.Nodes, r.Eligible)
	default:
		return fmt.Sprintf("%s after %s", r.Phase, s.Label)
	}
}

// rolloutPrediction is what the deciding step predicted for the fleet in one resource, against
// its budget and the servers' capacity: "5.0 cores (95%: 4.1–5.9) vs 0.50 of 2 cores".
func rolloutPrediction(r *report.Report, resource string) string {
	s, ok := lastStep(r)
	if !ok || s.Resources[resource].Predicted == nil {
		return "-"
	}
	p := s.Resources[resource].Predicted
	res := check.Resource(resource)
	out := check.Range(res, p.Mean, p.Low, p.High)
	for _, b := range r.Budgets {
		switch {
		case b.Resource != resource:
		case b.Gated:
			out += fmt.Sprintf(" vs %s of %s", check.Amount(res, b.Limit), check.Amount(res, b.Capacity))
		default:
			out += " (not gated: capacity unknown)"
		}
	}
	return out
}

func rolloutRollbackTime(r *report.Report) string {
	s, ok := lastStep(r)
	if !ok || s.Verdict != report.Halted || s.DecidedAt.IsZero() || r.Updated.Before(s.DecidedAt) {
		return "-"
	}
	return seconds(r.Updated.Sub(s.DecidedAt).Seconds())
}

func ratioText(v Number) string {
	if math.IsNaN(float64(v)) {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(v))
}

// WriteHTML renders the report: per run, timelines of the probe's p99 against the SLO, seats by
// flow, and DNS success per server, with the run's events marked.
func WriteHTML(w io.Writer, runs []Run) error {
	var table bytes.Buffer
	if err := WriteTable(&table, runs); err != nil {
		return err
	}
	type panel struct {
		Run               Run
		Probe, Seats, DNS template.HTML
	}
	var panels []panel
	for _, r := range runs {
		panels = append(panels, panel{Run: r, Probe: probeChart(r), Seats: seatsChart(r), DNS: dnsChart(r)})
	}
	return reportTemplate.Execute(w, struct {
		Table  string
		Panels []panel
	}{table.String(), panels})
}

var reportTemplate = template.Must(template.New("report").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>bulkhead demo: the December 2024 incident, replayed</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
pre{background:#f6f6f6;padding:1em}
.runs{display:flex;gap:2em;flex-wrap:wrap}
.run{flex:1;min-width:560px}
h2{margin-bottom:.2em}
ol{font-size:13px;color:#444}
</style></head><body>
<h1>The December 2024 incident, replayed</h1>
<p>The same lab, twice: a telemetry DaemonSet whose every agent LISTs every pod, applied the ordinary way
(<b>unguarded</b>) and through <code>bulkhead rollout apply</code> with the break-glass lane installed (<b>guarded</b>).
The probe GETs as an ordinary service account; the SLO is the upstream one for single-object calls (p99 ≤ 1 s).
Both DNS servers are restarted midway (the dashed line). Shaded: every probe request failed (the apiserver was down).</p>
<pre>{{.Table}}</pre>
<div class="runs">{{range .Panels}}<div class="run">
<h2>{{.Run.Mode}}</h2>
{{.Probe}}{{.Seats}}{{.DNS}}
{{if .Run.RolloutReport}}<p><a href="{{.Run.Mode}}/rollout.html">the rollout's own report</a></p>{{end}}
<ol>{{range .Run.Events}}<li>{{printf "%.0f" .At}}s: {{.Text}}</li>{{end}}</ol>
</div>{{end}}</div>
</body></html>
`))

type series struct {
	name   string
	color  string
	points [][2]float64
}

var palette = []string{"#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"}

func probeChart(r Run) template.HTML {
	var p99 []([2]float64)
	for _, s := range r.Samples {
		switch {
		case s.ProbeOK == 0 && s.ProbeFailed > 0:
			p99 = append(p99, [2]float64{s.At, math.NaN()}) // down: a gap in the line, not a slope
		case !math.IsNaN(float64(s.ProbeP99)):
			p99 = append(p99, [2]float64{s.At, float64(s.ProbeP99)})
		}
	}
	return chart("probe GET p99 (s), SLO 1 s", []series{{name: "p99", color: palette[0], points: p99}}, 1, r)
}

func seatsChart(r Run) template.HTML {
	totals := map[string]float64{}
	for _, s := range r.Samples {
		for flow, v := range s.Seats {
			totals[flow] += v
		}
	}
	flows := make([]string, 0, len(totals))
	for f := range totals {
		flows = append(flows, f)
	}
	sort.Slice(flows, func(i, j int) bool { return totals[flows[i]] > totals[flows[j]] })
	flows = flows[:min(len(flows), 5)]
	var out []series
	for i, f := range flows {
		var pts [][2]float64
		for _, s := range r.Samples {
			pts = append(pts, [2]float64{s.At, s.Seats[f]})
		}
		out = append(out, series{name: f, color: palette[(i+1)%len(palette)], points: pts})
	}
	return chart("APF seats held, by flow schema (top 5)", out, -1, r)
}

func dnsChart(r Run) template.HTML {
	var out []series
	for i, server := range []string{CoreDNS, BulkheadDNS} {
		var pts [][2]float64
		for _, s := range r.Samples {
			if c := s.DNS[server]; c.OK+c.Failed > 0 {
				pts = append(pts, [2]float64{s.At, 100 * float64(c.OK) / float64(c.OK+c.Failed)})
			}
		}
		out = append(out, series{name: server, color: palette[i], points: pts})
	}
	return chart("DNS answers for cluster names (%)", out, -1, r)
}

// downSpans are the sampling intervals in which every probe request failed.
func downSpans(r Run) [][2]float64 {
	var spans [][2]float64
	prev := 0.0
	for _, s := range r.Samples {
		if s.ProbeOK == 0 && s.ProbeFailed > 0 {
			if n := len(spans); n > 0 && spans[n-1][1] == prev {
				spans[n-1][1] = s.At
			} else {
				spans = append(spans, [2]float64{prev, s.At})
			}
		}
		prev = s.At
	}
	return spans
}

// chart draws series as polylines in an SVG; hline > 0 draws a threshold; the run's DNS
// restart is the dashed vertical line; the spans when the apiserver was down are shaded.
func chart(title string, data []series, hline float64, r Run) template.HTML {
	const w, h, left, bottom = 560.0, 200.0, 44.0, 20.0
	xMax, yMax := 1.0, 0.0
	for _, x := range r.Samples {
		xMax = math.Max(xMax, x.At)
	}
	for _, s := range data {
		for _, p := range s.points {
			if !math.IsNaN(p[1]) {
				xMax, yMax = math.Max(xMax, p[0]), math.Max(yMax, p[1])
			}
		}
	}
	yMax = math.Max(yMax, hline) * 1.1
	if yMax == 0 {
		yMax = 1
	}
	x := func(v float64) float64 { return left + (w-left-10)*v/xMax }
	y := func(v float64) float64 { return (h - bottom) - (h-bottom-10)*v/yMax }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %.0f %.0f" width="100%%" role="img"><title>%s</title>`, w, h+16*float64(len(data)), template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<text x="%.0f" y="12" font-size="12">%s</text>`, left, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#999"/>`, left, y(0), w-10, y(0))
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#999"/>`, left, y(0), left, y(yMax))
	fmt.Fprintf(&b, `<text x="2" y="%.0f" font-size="10">%.3g</text><text x="2" y="%.0f" font-size="10">0</text>`, y(yMax)+10, yMax, y(0))
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="10" text-anchor="end">%.0fs</text>`, w-10, h-4, xMax)
	for _, span := range downSpans(r) {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#d62728" fill-opacity="0.12"/>`, x(span[0]), y(yMax), x(span[1])-x(span[0]), y(0)-y(yMax))
	}
	if hline > 0 {
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#000" stroke-dasharray="2,2"/>`, left, y(hline), w-10, y(hline))
	}
	if r.DNSRestartAt > 0 {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#666" stroke-dasharray="6,3"/>`, x(r.DNSRestartAt), y(0), x(r.DNSRestartAt), y(yMax))
	}
	for i, s := range data {
		// A NaN value ends one polyline; the next point starts another.
		var pts []string
		flush := func() {
			if len(pts) > 0 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, s.color, strings.Join(pts, " "))
			}
			pts = nil
		}
		for _, p := range s.points {
			if math.IsNaN(p[1]) {
				flush()
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p[0]), y(p[1])))
		}
		flush()
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11" fill="%s">— %s</text>`, left, h+12+16*float64(i), s.color, template.HTMLEscapeString(s.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
