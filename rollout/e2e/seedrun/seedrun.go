// Package seedrun runs the seed incident's agent — every agent LISTs every pod, often — through a
// guarded rollout on a lab with bulkhead's default budget, for the e2e packages that check the
// gate halts it after wave 1 however the API servers are read (replicas discovered, a balanced
// address, a Prometheus).
package seedrun

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
	bulkhead "github.com/bulkhead-dev/bulkhead/rollout"
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/soak"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Name is the agent DaemonSet's (and its service account's) name.
const Name = "telemetry"

// Replicas is how many kube-apiservers the labs run.
const Replicas = 3

// LabOptions is the lab's shape: three API servers, 12 nodes of 40 pods, so that the seed's agent
// LISTs enough to matter on a 2-core box.
func LabOptions() labtest.Options {
	return labtest.Options{Nodes: 12, PodsPerNode: 40, Services: 4, APIServers: Replicas}
}

// Run rolls the seed's agent out in namespace ns, reading the API servers through source, and
// returns the final state, the halt decision (if any) and every line the rollout logged. During,
// when not nil, runs once wave 1 soaks.
func Run(t *testing.T, lab *labtest.Lab, ns string, source controlplane.Source, during func(context.Context)) (state.State, analyze.Decision, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := lab.ServiceAccount(ctx, ns, Name, "view"); err != nil {
		t.Fatal(err)
	}
	var lines []string
	var halt analyze.Decision
	engine := &bulkhead.Engine{
		Client: lab.Client, Meter: &soak.Meter{Scraper: source, Interval: 2 * time.Second},
		Timing: check.Timing{Settle: 4 * time.Second},
		Log:    func(_, _, line string) { lines = append(lines, line); t.Log(line) },
		Decisions: func(_, _ string, d analyze.Decision) {
			if d.Verdict == analyze.Halt {
				halt = d
			}
		},
	}
	meterCtx, stopMeter := context.WithCancel(ctx)
	defer stopMeter()
	go engine.Meter.Run(meterCtx)
	defer engine.Close()
	if during != nil {
		go func() {
			for ctx.Err() == nil {
				if _, st, err := execute.Load(ctx, lab.Client, ns, Name); err == nil && st.Phase == state.Soaking && st.Wave == 1 {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			during(ctx)
		}()
	}
	ds := labtest.AgentDaemonSet(ns, Name, "agent:v1", "- list: pods\n  every: 100ms\n")
	before, err := lab.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	final, err := bulkhead.Apply(ctx, engine, ds, bulkhead.Options{Waves: "25%,100%", Soak: 12 * time.Second})
	if err != nil {
		t.Fatalf("rollout: %v", err)
	}
	// Served LISTs, not refusals: a stopped replica's connections and the lane's 429s may fail some.
	lab.RequireAgentsServed(ctx, t, before, ns+"/"+Name)
	return final, halt, lines
}

// RequireHaltedOnCPU fails the test unless the rollout was rolled back after wave 1 by the CPU
// budget, a share of the capacity of every one of the Replicas API servers (GOMAXPROCS 2 each).
func RequireHaltedOnCPU(t *testing.T, final state.State, halt analyze.Decision) {
	t.Helper()
	cpu, _ := halt.Resource(check.CPU)
	if final.Phase != state.RolledBack || final.Wave != 1 || len(cpu.Halts) == 0 || !strings.HasPrefix(cpu.Halts[0], "cpu: ") {
		t.Fatalf("phase %s at wave %d, CPU halts %q, reasons %q: want the seed's agent halted after wave 1 by the CPU budget", final.Phase, final.Wave, cpu.Halts, halt.Reasons)
	}
	if l := final.Limits[check.CPU]; l.Capacity < Replicas*2 {
		t.Fatalf("CPU capacity %v: want the %d replicas' GOMAXPROCS summed", l.Capacity, Replicas)
	}
	t.Logf("halted: %s; notes %q", halt.Headline, halt.Notes)
}
