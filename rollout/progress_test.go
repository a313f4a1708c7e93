package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
)

func TestASoakShowsItsHoldsWhenTheyChangeOrEveryHalfMinute(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	hold := func(reason string) analyze.Decision {
		kind, _, _ := strings.Cut(reason, ":")
		return analyze.Decision{Verdict: analyze.Hold, Reasons: []string{reason}, Kind: map[string]analyze.ReasonKind{
			"waiting for agents": analyze.KindAgents, "soaking": analyze.KindSoaking}[kind]}
	}
	steps := []struct {
		at   time.Duration
		d    analyze.Decision
		want bool
	}{
		{0, hold("waiting for agents: 0 of 3 new agents Ready after 0s"), true}, // the first
		{5 * time.Second, hold("waiting for agents: 2 of 3 new agents Ready after 5s"), false},
		{10 * time.Second, hold("soaking: 0s of 1m0s"), true}, // a new kind
		{15 * time.Second, hold("soaking: 5s of 1m0s"), false},
		{35 * time.Second, hold("soaking: 25s of 1m0s"), false},
		{40 * time.Second, hold("soaking: 30s of 1m0s"), true}, // 30 s since the last line
		{45 * time.Second, analyze.Decision{Verdict: analyze.Proceed}, false},
		{50 * time.Second, hold("waiting for agents: 0 of 12 new agents Ready after 0s"), true}, // the next wave
	}
	var h holdReporter
	for _, s := range steps {
		if got := h.report(s.d, t0.Add(s.at)); got != s.want {
			t.Errorf("at %v, %v %v: printed %v, want %v", s.at, s.d.Verdict, s.d.Reasons, got, s.want)
		}
	}
}
