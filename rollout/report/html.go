package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"

	"github.com/bulkhead-dev/bulkhead/rollout/check"
)

// WriteHTML writes a self-contained page: a summary, a chart per resource, and the decisions in
// words.
func WriteHTML(w io.Writer, r Report) error {
	type chart struct {
		Budget Budget
		SVG    template.HTML
	}
	var charts []chart
	for _, b := range r.Budgets {
		charts = append(charts, chart{b, Chart(r, b.Resource)})
	}
	if err := page.Execute(w, struct {
		Report
		Charts []chart
	}{r, charts}); err != nil {
		return fmt.Errorf("write HTML report: %w", err)
	}
	return nil
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{"amount": amountOf, "interval": intervalOf, "percent": percent}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>bulkhead rollout {{.Namespace}}/{{.DaemonSet}} {{.ID}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}
table{border-collapse:collapse;font-size:14px}td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd}
.outcome{font-size:1.1em;font-weight:bold}.halt{color:#b00}
</style></head><body>
<h1>Rollout of DaemonSet {{.Namespace}}/{{.DaemonSet}}</h1>
<p class="outcome">{{.Outcome}}</p>
<table>
<tr><th>rollout</th><td>{{.ID}} ({{.Kind}}), phase {{.Phase}}{{if .Paused}}, paused{{end}}</td></tr>
<tr><th>waves</th><td>{{.Waves}} → {{.Targets}} of {{.Eligible}} eligible nodes; {{.NodesSwitched}} switched; soak {{.SoakSeconds}} s</td></tr>
{{range .Budgets}}<tr><th>budget, {{.Resource}}</th><td>{{.Words}}</td></tr>
{{end}}
<tr><th>lane</th><td>FlowSchema {{.FlowSchema}}, PriorityLevelConfiguration {{.PriorityLevel}}</td></tr>
{{if .Reason}}<tr><th>halted because</th><td class="halt">{{.Reason}}</td></tr>{{end}}
</table>
{{range .Charts}}<h2>{{.Budget.Resource}} per wave</h2>
{{.SVG}}
{{end}}<p>Measured: the lane's steady demand with the agents of that wave — CPU from its execution time and the API servers' CPU difference,
seats as APF integrates them, memory from the seats its requests hold in flight — plus what the lane queued or rejected.
Predicted: the demand of all {{.Eligible}} agents the decision rested on, with its 95% interval; seats and memory at the CPU load the fleet would cause.</p>
<h2>Decisions</h2>
<ol>{{range .Steps}}<li{{if eq .Verdict "halt"}} class="halt"{{end}}>{{if .Headline}}{{.Headline}}{{else}}{{.Label}}: {{.Verdict}}{{end}}{{if .ReadyToDecision}} <small>(decided {{printf "%.0f" .ReadyToDecision}} s after the agents were Ready)</small>{{end}}</li>{{end}}
<li>{{.Outcome}}</li></ol>
<table>
<tr><th>step</th><th>nodes</th><th>agents new/old</th><th>resource</th><th>measured</th><th>predicted at 100%</th><th>servers' CPU</th><th>verdict</th></tr>
{{range $s := .Steps}}{{range $r, $m := .Resources}}<tr><td>{{$s.Label}}</td><td>{{$s.Nodes}}</td><td>{{$s.New}}/{{$s.Old}}</td><td>{{$r}}</td><td>{{amount $r $m.Measured}} ± {{amount $r $m.MeasuredSE}} ({{$m.Samples}} samples)</td><td>{{with $m.Predicted}}{{interval $r .}}{{else}}—{{end}}</td><td>{{percent $s.Utilization}}</td><td>{{$s.Verdict}}</td></tr>
{{end}}{{end}}</table>
<p><small>Written by bulkhead from the rollout state on the DaemonSet (annotation rollout.bulkhead.dev/state), updated {{.Updated.UTC.Format "2006-01-02 15:04:05 UTC"}}.</small></p>
</body></html>
`))

// Chart draws, for one resource, each step's measured steady demand and predicted fleet demand
// (with the interval) against the budget and capacity lines, as inline SVG. The axis is
// logarithmic: a 2-agent wave uses a hundredth of what the fleet would, and both must be readable
// next to the budget and a capacity ten times larger. Values at or below the axis floor sit on it.
func Chart(r Report, resource string) template.HTML {
	const w, h, left, right, top, bottom = 640.0, 280.0, 56.0, 150.0, 16.0, 36.0
	var budget Budget
	for _, b := range r.Budgets {
		if b.Resource == resource {
			budget = b
		}
	}
	scale, unit := axisUnit(resource)
	var values []float64
	for _, s := range r.Steps {
		m := s.Resources[resource]
		values = append(values, m.Measured/scale)
		if p := m.Predicted; p != nil {
			values = append(values, p.Mean/scale, p.Low/scale, p.High/scale)
		}
	}
	if budget.Gated {
		values = append(values, budget.Limit/scale, budget.Capacity/scale)
	}
	lo, hi := math.Inf(1), 0.0
	for _, v := range values {
		if v > 0 {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if hi == 0 {
		lo, hi = 0.1, 1
	}
	yMin := math.Pow(10, math.Floor(math.Log10(math.Max(lo, hi/1e5))))
	yMax := math.Pow(10, math.Ceil(math.Log10(hi*1.05)))
	y := func(v float64) float64 {
		v = math.Min(math.Max(v, yMin), yMax)
		return top + (h-top-bottom)*(1-(math.Log10(v)-math.Log10(yMin))/(math.Log10(yMax)-math.Log10(yMin)))
	}
	n := max(len(r.Steps), 1)
	slot := (w - left - right) / float64(n)
	x := func(i int) float64 { return left + slot*(float64(i)+0.5) }

	var b strings.Builder
	title := fmt.Sprintf("%s per wave: measured and predicted at %d agents, against the budget", resource, r.Eligible)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-resource="%s" viewBox="0 0 %.0f %.0f" width="100%%" role="img"><title>%s</title>`, esc(resource), w, h, esc(title))
	// Axes and decade grid.
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#999"/>`, left, y(yMin), w-right, y(yMin))
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#999"/>`, left, y(yMin), left, y(yMax))
	for e := math.Log10(yMin); e <= math.Log10(yMax)+0.5; e++ {
		d := math.Pow(10, math.Round(e))
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/>`, left, y(d), w-right, y(d))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="10" text-anchor="end">%g</text>`, left-4, y(d)+3, d)
	}
	fmt.Fprintf(&b, `<text x="4" y="%.0f" font-size="10" transform="rotate(-90 10 %.0f)">%s (log)</text>`, h/2, h/2, unit)
	hline := func(class, color, dash, label string, v float64) {
		if v <= 0 {
			return
		}
		fmt.Fprintf(&b, `<line class="%s" data-value="%g" x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="%s" stroke-width="1.5" stroke-dasharray="%s"/>`,
			class, v*scale, left, y(v), w-right, y(v), color, dash)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="11" fill="%s">%s</text>`, w-right+4, y(v)+4, color, esc(label))
	}
	if budget.Gated {
		hline("capacity", "#555", "1,0", "capacity "+amountOf(resource, budget.Capacity), budget.Capacity/scale)
		hline("budget", "#d62728", "6,3", fmt.Sprintf("budget %s (%g%%)", amountOf(resource, budget.Limit), budget.Share), budget.Limit/scale)
	} else {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11" fill="#d62728">not gated: capacity unknown</text>`, w-right+4, top+12)
	}
	if len(r.Steps) == 0 {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="12">no wave has been decided yet</text>`, left+10, h/2)
	}
	var measured []string
	for i, s := range r.Steps {
		m := s.Resources[resource]
		color := "#222"
		if s.Verdict == Halted {
			color = "#d62728"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="11" text-anchor="middle" fill="%s">%s</text>`, x(i), h-bottom+14, color, esc(s.Label))
		agents := fmt.Sprintf("%d agents", s.New+s.Old)
		if s.New > 0 && s.Old > 0 {
			agents = fmt.Sprintf("%d new + %d old", s.New, s.Old)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="10" text-anchor="middle" fill="%s">%s · %s</text>`, x(i), h-bottom+27, color, agents, s.Verdict)
		if p := m.Predicted; p != nil {
			px := x(i) + 10
			fmt.Fprintf(&b, `<line class="interval" data-wave="%d" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ff7f0e" stroke-width="2"/>`, s.Wave, px, y(p.Low/scale), px, y(p.High/scale))
			fmt.Fprintf(&b, `<rect class="predicted" data-wave="%d" data-value="%g" x="%.1f" y="%.1f" width="8" height="8" fill="#ff7f0e"/>`, s.Wave, p.Mean, px-4, y(p.Mean/scale)-4)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" fill="#ff7f0e">%s</text>`, px+7, y(p.Mean/scale)+3, amountOf(resource, p.Mean))
		}
		mx := x(i) - 10
		measured = append(measured, fmt.Sprintf("%.1f,%.1f", mx, y(m.Measured/scale)))
		fmt.Fprintf(&b, `<circle class="measured" data-wave="%d" data-value="%g" cx="%.1f" cy="%.1f" r="4" fill="#1f77b4"/>`, s.Wave, m.Measured, mx, y(m.Measured/scale))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" fill="#1f77b4" text-anchor="end">%s</text>`, mx-6, y(m.Measured/scale)+3, amountOf(resource, m.Measured))
	}
	if len(measured) > 1 {
		fmt.Fprintf(&b, `<polyline fill="none" stroke="#1f77b4" stroke-width="1" points="%s"/>`, strings.Join(measured, " "))
	}
	legend := h - bottom - 40
	fmt.Fprintf(&b, `<circle cx="%.0f" cy="%.0f" r="4" fill="#1f77b4"/><text x="%.0f" y="%.0f" font-size="11">measured</text>`, w-right+8, legend, w-right+16, legend+4)
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="8" height="8" fill="#ff7f0e"/><text x="%.0f" y="%.0f" font-size="11">predicted, %d agents</text>`, w-right+4, legend+12, w-right+16, legend+20, r.Eligible)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// axisUnit is what a resource's axis counts in: memory in MiB, the others as they are.
func axisUnit(resource string) (float64, string) {
	switch resource {
	case string(check.Memory):
		return 1 << 20, "MiB"
	case string(check.CPU):
		return 1, "cores"
	}
	return 1, "seats"
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// amountOf prints a quantity of a resource as the rollout's words do.
func amountOf(resource string, v float64) string { return check.Amount(check.Resource(resource), v) }

func intervalOf(resource string, p Interval) string {
	return check.Range(check.Resource(resource), p.Mean, p.Low, p.High)
}

func percent(utilization float64) string {
	if utilization <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f%%", 100*utilization)
}
