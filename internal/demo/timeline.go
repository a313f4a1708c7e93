package demo

import (
	"encoding/json"
	"math"
	"slices"

	"github.com/bulkhead-dev/bulkhead/rollout/report"
)

// Mode names a run.
type Mode string

const (
	Unguarded Mode = "unguarded"
	Guarded   Mode = "guarded"
)

// DNS server names, as shown in reports.
const (
	CoreDNS      = "CoreDNS v1.15.0"
	BulkheadDNS  = "bulkhead dns"
	sloGetSecond = 1.0 // upstream SLO: p99 of single-object calls ≤ 1 s
)

// Number is a measurement that may be missing (NaN); JSON shows a missing one as null.
type Number float64

// MarshalJSON writes NaN and infinities as null, which encoding/json cannot encode as numbers.
func (n Number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

// DNSCount is how many of a server's queries in a sample were answered.
type DNSCount struct {
	OK     int `json:"ok"`
	Failed int `json:"failed"`
}

// Sample is what the recorder saw over one sampling interval, At seconds into the run.
type Sample struct {
	At          float64 `json:"at"`
	ProbeP50    Number  `json:"probeP50"`
	ProbeP99    Number  `json:"probeP99"`
	ProbeOK     int     `json:"probeOK"`
	ProbeFailed int     `json:"probeFailed"`
	// ProbeStuck counts requests still unanswered after the SLO's second when the sample ends.
	ProbeStuck   int                 `json:"probeStuck"`
	ServerGetP99 Number              `json:"serverGetP99"` // missing when the apiserver could not be read
	Rejected     float64             `json:"rejectedPerSecond"`
	Seats        map[string]float64  `json:"seats"` // seat-seconds/s per flow schema
	DNS          map[string]DNSCount `json:"dns"`
	AgentNodes   int                 `json:"agentNodes"` // nodes with an agent pod scheduled
	// APIServerRestarts counts the apiserver's deaths so far (killed at its memory limit).
	APIServerRestarts int `json:"apiserverRestarts"`
}

// Event is a moment worth marking on the timeline.
type Event struct {
	At   float64 `json:"at"`
	Text string  `json:"text"`
}

// Run is one replay.
type Run struct {
	Mode    Mode     `json:"mode"`
	Nodes   int      `json:"nodes"`
	Samples []Sample `json:"samples"`
	Events  []Event  `json:"events"`
	// DNSRestartAt is when both DNS servers were restarted, in seconds into the run.
	DNSRestartAt float64 `json:"dnsRestartAt"`
	// Rollout is what `bulkhead rollout apply` said, and RolloutReport its JSON report (guarded
	// runs only).
	Rollout       []string       `json:"rollout,omitempty"`
	RolloutReport *report.Report `json:"rolloutReport,omitempty"`
	Summary       Summary        `json:"summary"`
}

// Summary is a run in numbers.
type Summary struct {
	ProbeP99Max    float64 `json:"probeP99Max"`
	SecondsOverSLO float64 `json:"secondsOverSLO"`
	// UnusableAfter is when the probe first broke the SLO (p99 > 1 s or failures), or -1.
	UnusableAfter float64 `json:"unusableAfter"`
	Rejected      float64 `json:"rejected"`
	// DNS success ratios over the whole run and after the restart.
	DNSSuccess             map[string]Number `json:"dnsSuccess"`
	DNSSuccessAfterRestart map[string]Number `json:"dnsSuccessAfterRestart"`
	MaxAgentNodes          int               `json:"maxAgentNodes"`
	FinalAgentNodes        int               `json:"finalAgentNodes"`
	APIServerRestarts      int               `json:"apiserverRestarts"`
}

// Summarize computes a run's summary from its samples. interval is the sampling interval.
func Summarize(samples []Sample, restartAt, interval float64) Summary {
	s := Summary{
		UnusableAfter:          -1,
		DNSSuccess:             map[string]Number{},
		DNSSuccessAfterRestart: map[string]Number{},
	}
	total := map[string]DNSCount{}
	after := map[string]DNSCount{}
	for _, x := range samples {
		if !math.IsNaN(float64(x.ProbeP99)) {
			s.ProbeP99Max = math.Max(s.ProbeP99Max, float64(x.ProbeP99))
		}
		broken := x.Broken()
		if broken {
			s.SecondsOverSLO += interval
			if s.UnusableAfter < 0 {
				s.UnusableAfter = x.At
			}
		}
		s.Rejected += x.Rejected * interval
		s.MaxAgentNodes = max(s.MaxAgentNodes, x.AgentNodes)
		for server, c := range x.DNS {
			total[server] = add(total[server], c)
			if x.At >= restartAt {
				after[server] = add(after[server], c)
			}
		}
	}
	if len(samples) > 0 {
		last := samples[len(samples)-1]
		s.FinalAgentNodes, s.APIServerRestarts = last.AgentNodes, last.APIServerRestarts
	}
	for server, c := range total {
		s.DNSSuccess[server] = ratio(c)
	}
	for server, c := range after {
		s.DNSSuccessAfterRestart[server] = ratio(c)
	}
	return s
}

// Broken tells whether the sample breaks the 1 s SLO for an ordinary client: a p99 over a second,
// a failed request, or one still waiting for its answer after a second.
func (x Sample) Broken() bool {
	return float64(x.ProbeP99) > sloGetSecond || x.ProbeFailed > 0 || x.ProbeStuck > 0
}

func add(a, b DNSCount) DNSCount { return DNSCount{OK: a.OK + b.OK, Failed: a.Failed + b.Failed} }

// ratio is the answered share, NaN when nothing was asked.
func ratio(c DNSCount) Number {
	if c.OK+c.Failed == 0 {
		return Number(math.NaN())
	}
	return Number(float64(c.OK) / float64(c.OK+c.Failed))
}

// quantile of unsorted values; NaN for none.
func quantile(values []float64, q float64) Number {
	if len(values) == 0 {
		return Number(math.NaN())
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	return Number(sorted[min(len(sorted)-1, max(0, int(math.Ceil(q*float64(len(sorted))))-1))])
}
