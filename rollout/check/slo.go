package check

import (
	"fmt"
	"strings"
	"time"
)

// SLI is one latency indicator of the API servers over the soak, e.g. GET resource.
type SLI struct {
	Verb, Scope string
	P99, SLO    time.Duration
	// Requests is how many requests the p99 is computed from: a p99 of a handful says little.
	Requests int64
}

// SLOs halts on any latency indicator over its objective, over enough requests to mean something.
func SLOs(slis []SLI, g Guards) Result {
	r := Result{Check: "slo", MaxNextWave: -1}
	for _, s := range slis {
		if s.Requests >= g.MinSLIRequests && s.SLO > 0 && s.P99 > s.SLO {
			r.Halts = append(r.Halts, fmt.Sprintf("SLO breached: %s %s p99 %v > %v (%d requests)",
				strings.ToUpper(s.Verb), s.Scope, round(s.P99), round(s.SLO), s.Requests))
		}
	}
	return r
}
