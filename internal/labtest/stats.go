package labtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// ActionStats is one kind of emulated request of one service account, as `bulkhead-lab ctl stats`
// reports it (lab/behavior.ActionStats): counts since the lab started, latencies in seconds.
type ActionStats struct {
	ServiceAccount string  `json:"serviceAccount"` // namespace/name
	Verb           string  `json:"verb"`
	Resource       string  `json:"resource"`
	Requests       int64   `json:"requests"`
	Errors         int64   `json:"errors"`
	Rejected       int64   `json:"rejected"` // errors that were 429s
	Bytes          int64   `json:"bytes"`
	P50            float64 `json:"p50"`
	P99            float64 `json:"p99"`
	Max            float64 `json:"max"`
}

// Stats is what the lab's behaviour emulator did, one entry per service account, verb and resource.
type Stats []ActionStats

// Stats asks the running lab what its emulated agents did. An error is counted for every answer
// other than 200 (a 403 for missing RBAC, a 429 from APF) and every failed connection.
func (l *Lab) Stats(ctx context.Context) (Stats, error) {
	out, err := exec.CommandContext(ctx, l.binary, "ctl", "--dir", l.Dir, "stats").Output()
	if err != nil {
		return nil, fmt.Errorf("bulkhead-lab ctl stats: %w", err)
	}
	var st Stats
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("bulkhead-lab ctl stats: %w", err)
	}
	return st, nil
}

// AgentCounts are an agent's requests and failed requests, over all its verbs and resources.
type AgentCounts struct {
	Requests, Errors int64
}

// Agent sums the counts of one service account ("namespace/name").
func (s Stats) Agent(serviceAccount string) AgentCounts {
	var c AgentCounts
	for _, a := range s {
		if a.ServiceAccount == serviceAccount {
			c.Requests += a.Requests
			c.Errors += a.Errors
		}
	}
	return c
}

// describe lists one service account's actions, for failure messages.
func (s Stats) describe(serviceAccount string) string {
	var b strings.Builder
	for _, a := range s {
		if a.ServiceAccount == serviceAccount {
			fmt.Fprintf(&b, "\n  %s %s: %d requests, %d errors", a.Verb, a.Resource, a.Requests, a.Errors)
		}
	}
	if b.Len() == 0 {
		return " (no requests recorded)"
	}
	return b.String()
}

// RequireAgentsSucceeded fails t unless each service account ("namespace/name") made requests
// since before (nil: since the lab started) and none of them failed. APF counts a request that
// authorization then refuses as dispatched, so a load measured by APF alone would pass with an
// agent that only gets cheap 403s. It returns the stats it read, for the next window.
func (l *Lab) RequireAgentsSucceeded(ctx context.Context, t testing.TB, before Stats, serviceAccounts ...string) Stats {
	t.Helper()
	return l.requireAgents(ctx, t, before, serviceAccounts, "none failed", func(requests, errors int64) bool { return errors == 0 })
}

// RequireAgentsServed is RequireAgentsSucceeded for agents meant to overload the API server, whose
// excess APF rejects (429) or times out: some of their requests must have been served. An agent
// that is never served (a 403 for missing RBAC) loads the server with nothing.
func (l *Lab) RequireAgentsServed(ctx context.Context, t testing.TB, before Stats, serviceAccounts ...string) Stats {
	t.Helper()
	return l.requireAgents(ctx, t, before, serviceAccounts, "some served", func(requests, errors int64) bool { return errors < requests })
}

func (l *Lab) requireAgents(ctx context.Context, t testing.TB, before Stats, serviceAccounts []string, want string, ok func(requests, errors int64) bool) Stats {
	t.Helper()
	now, err := l.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sa := range serviceAccounts {
		was, is := before.Agent(sa), now.Agent(sa)
		requests, errors := is.Requests-was.Requests, is.Errors-was.Errors
		if requests == 0 || !ok(requests, errors) {
			t.Errorf("emulated agent %s made %d requests, %d of them failed; want some and %s "+
				"(does its service account have the RBAC its behaviour needs?). Since the lab started:%s",
				sa, requests, errors, want, now.describe(sa))
		}
	}
	return now
}
