// Package ha runs guarded rollouts on a lab of three kube-apiservers behind a load balancer, as
// production control planes run: the servers' capacity and the agents' load are summed over
// replicas, the busiest replica must fit its own share, and a replica lost during a soak is left
// out of the measurement — never counted as idle — and named.
package ha

import (
	"context"
	"os"
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

var lab *labtest.Lab

const (
	nodes    = 12
	replicas = 3
)

func TestMain(m *testing.M) {
	os.Exit(labtest.Run(m, labtest.Options{Nodes: nodes, PodsPerNode: 40, Services: 4, APIServers: replicas}, &lab))
}

// seed runs the seed's agent (every agent LISTs every pod, often) through a guarded rollout with
// the default budget; during wave 1's soak, when stop is set, it stops one replica for 20 s.
func seed(t *testing.T, ns string, stop bool) (state.State, analyze.Decision, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const name = "telemetry"
	if err := lab.ServiceAccount(ctx, ns, name, "view"); err != nil {
		t.Fatal(err)
	}
	scraper, err := controlplane.NewScraper(lab.Config, controlplane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	scraper.WaitForDiscovery(ctx, 10*time.Second)
	var lines []string
	var halt analyze.Decision
	engine := &bulkhead.Engine{
		Client: lab.Client, Meter: &soak.Meter{Scraper: scraper, Interval: 2 * time.Second},
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
	if stop {
		go func() {
			for ctx.Err() == nil {
				if _, st, err := execute.Load(ctx, lab.Client, ns, name); err == nil && st.Phase == state.Soaking && st.Wave == 1 {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if err := lab.StopReplica(ctx, 2); err != nil {
				t.Errorf("stop replica 2: %v", err)
				return
			}
			time.Sleep(20 * time.Second)
			if err := lab.StartReplica(ctx, 2); err != nil {
				t.Errorf("start replica 2: %v", err)
			}
		}()
	}
	ds := labtest.AgentDaemonSet(ns, name, "agent:v1", "- list: pods\n  every: 100ms\n")
	before, err := lab.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	final, err := bulkhead.Apply(ctx, engine, ds, bulkhead.Options{Waves: "25%,100%", Soak: 12 * time.Second})
	if err != nil {
		t.Fatalf("rollout: %v", err)
	}
	// Served LISTs, not refusals: a stopped replica's connections and the lane's 429s may fail some.
	lab.RequireAgentsServed(ctx, t, before, ns+"/"+name)
	return final, halt, lines
}

func assertHaltedOnCPU(t *testing.T, final state.State, halt analyze.Decision) {
	t.Helper()
	cpu, _ := halt.Resource(check.CPU)
	if final.Phase != state.RolledBack || final.Wave != 1 || len(cpu.Halts) == 0 || !strings.HasPrefix(cpu.Halts[0], "cpu: ") {
		t.Fatalf("phase %s at wave %d, CPU halts %q, reasons %q: want the seed's agent halted after wave 1 by the CPU budget", final.Phase, final.Wave, cpu.Halts, halt.Reasons)
	}
	// The budget is a share of the three replicas' capacity, summed.
	if l := final.Limits[check.CPU]; l.Capacity < replicas*2 {
		t.Fatalf("CPU capacity %v: want the three replicas' GOMAXPROCS summed", l.Capacity)
	}
}

func TestTheSeedsAgentIsHaltedAfterWaveOneOnThreeReplicas(t *testing.T) {
	final, halt, _ := seed(t, "ha-seed", false)
	assertHaltedOnCPU(t, final, halt)
	t.Logf("halted: %s", halt.Headline)
}

func TestAReplicaLostDuringTheSoakIsLeftOutAndNamed(t *testing.T) {
	final, halt, lines := seed(t, "ha-lost", true)
	assertHaltedOnCPU(t, final, halt)
	said := false
	for _, n := range halt.Notes {
		said = said || (strings.Contains(n, "could not be read afresh in") && strings.Contains(n, "left out, not counted as idle"))
	}
	if !said {
		t.Fatalf("the decision does not say which replica was missing: notes %q\n%s", halt.Notes, strings.Join(lines, "\n"))
	}
	t.Logf("halted: %s; %q", halt.Headline, halt.Notes)
}
