// Package e2e runs whole rollouts against the lab: real kube-apiserver, real DaemonSet
// controller, real /metrics, and agents emulated by the lab as their own service account.
package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

const nodes = 12

func TestMain(m *testing.M) {
	os.Exit(labtest.Run(m, labtest.Options{Nodes: nodes, PodsPerNode: 40, Services: 4}, &lab))
}

// setup creates the namespace and a service account allowed to read pods cluster-wide.
func setup(t *testing.T, ctx context.Context, ns, sa string) {
	t.Helper()
	if err := lab.ServiceAccount(ctx, ns, sa, "view"); err != nil {
		t.Fatal(err)
	}
}

// rollout runs a guarded rollout of a new DaemonSet as `bulkhead rollout apply` does — the
// engine, a meter scraping the real API server, bulkhead's default budget — to its end.
func rollout(t *testing.T, ctx context.Context, ds *appsv1.DaemonSet, waves string) (state.State, []analyze.Decision) {
	t.Helper()
	return rolloutWith(t, ctx, ds, bulkhead.Options{Waves: waves, Soak: 12 * time.Second}, nil)
}

// rolloutWith is rollout with options, and the metrics it scrapes passed through strip.
func rolloutWith(t *testing.T, ctx context.Context, ds *appsv1.DaemonSet, opts bulkhead.Options, strip func(controlplane.Snapshot) controlplane.Snapshot) (state.State, []analyze.Decision) {
	t.Helper()
	real, err := controlplane.NewScraper(lab.Config, controlplane.Options{})
	if err != nil {
		t.Fatalf("NewScraper: %v", err)
	}
	real.WaitForDiscovery(ctx, 10*time.Second)
	var scraper controlplane.Source = real
	if strip != nil {
		scraper = stripped{real, strip}
	}
	var decisions []analyze.Decision
	engine := &bulkhead.Engine{
		Client: lab.Client,
		Meter:  &soak.Meter{Scraper: scraper, Interval: 2 * time.Second},
		Timing: check.Timing{Settle: 4 * time.Second},
		Log:    func(_, _, line string) { t.Log(line) },
		Decisions: func(_, _ string, d analyze.Decision) {
			if d.Verdict != analyze.Hold {
				decisions = append(decisions, d)
			}
		},
	}
	meterCtx, stop := context.WithCancel(ctx)
	defer stop()
	go engine.Meter.Run(meterCtx)
	defer engine.Close()
	final, err := bulkhead.Apply(ctx, engine, ds, opts)
	if err != nil {
		t.Fatalf("rollout: %v", err)
	}
	return final, decisions
}

func TestAWellBehavedAgentReachesTheWholeFleet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, name = "good", "agent"
	setup(t, ctx, ns, name)
	ds := labtest.AgentDaemonSet(ns, name, "agent:v1", "- watch: pods\n  fieldSelector: spec.nodeName=$(NODE_NAME)\n")
	final, decisions := rollout(t, ctx, ds, "25%,100%")
	if final.Phase != state.Complete {
		t.Fatalf("phase %s (reason %q), want Complete", final.Phase, final.Reason)
	}
	if len(decisions) != 3 {
		t.Fatalf("%d decisions, want the baseline's and one per wave", len(decisions))
	}
	live, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get DaemonSet: %v", err)
	}
	if live.Status.UpdatedNumberScheduled != nodes || live.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Fatalf("after the rollout: %d updated pods, strategy %s", live.Status.UpdatedNumberScheduled, live.Spec.UpdateStrategy.Type)
	}
}

func TestTheSeedsAgentIsHaltedAfterWaveOneAndRolledBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, name = "seed", "telemetry"
	setup(t, ctx, ns, name)
	// Every agent LISTs every pod of the cluster, often: cost per agent ∝ cluster size. With
	// bulkhead's default budget (25% of the API server's CPU), 3 agents already show that 12
	// would need more than that.
	ds := labtest.AgentDaemonSet(ns, name, "agent:v1", "- list: pods\n  every: 100ms\n")
	before, err := lab.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	final, decisions := rollout(t, ctx, ds, "25%,100%")
	// The halt must come from LISTs the API server served, not from cheap refusals; the lane may
	// queue or reject the excess (429), so served, not all.
	lab.RequireAgentsServed(ctx, t, before, ns+"/"+name)
	if final.Phase != state.RolledBack {
		t.Fatalf("phase %s, want RolledBack", final.Phase)
	}
	if len(decisions) != 2 || decisions[1].Verdict != analyze.Halt {
		t.Fatalf("decisions %+v; want the baseline's proceed, then a halt after wave 1", decisions)
	}
	halt := decisions[1]
	cpu, _ := halt.Resource(check.CPU)
	if len(cpu.Halts) == 0 || !strings.Contains(cpu.Halts[0], "cpu: 12 agents would need") || !strings.Contains(cpu.Halts[0], "over the budget of") ||
		cpu.Prediction == nil || cpu.Prediction.Total.Mean <= cpu.Limit.Value {
		t.Fatalf("the halt must be the CPU budget's, with the prediction over it: CPU %+v, reasons %q", cpu, halt.Reasons)
	}
	if !strings.HasPrefix(halt.Headline, "wave 1: 3 agents use") || !strings.Contains(halt.Headline, "— halting") {
		t.Fatalf("headline %q", halt.Headline)
	}
	t.Logf("halted: %s", halt.Headline)
	if _, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the halted new DaemonSet still exists: %v", err)
	}
	if _, err := lab.Client.FlowcontrolV1().FlowSchemas().Get(ctx, execute.LaneNames(ns, name).FlowSchema, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the lane outlived the rollback: %v", err)
	}
}

// stripped is the API server's real /metrics less what a managed control plane may hide.
type stripped struct {
	scraper controlplane.Source
	strip   func(controlplane.Snapshot) controlplane.Snapshot
}

func (s stripped) Scrape(ctx context.Context) controlplane.Snapshot {
	return s.strip(s.scraper.Scrape(ctx))
}

// withoutCPU removes the process's CPU counter and GOMAXPROCS from every replica's metrics.
func withoutCPU(snap controlplane.Snapshot) controlplane.Snapshot {
	for _, r := range snap.Replicas {
		delete(r.Families, "process_cpu_seconds_total")
		delete(r.Families, "go_sched_gomaxprocs_threads")
	}
	return snap
}

// A control plane whose metrics hide its CPU: the rollout says which resource it cannot see and
// gates on the others; told the CPU capacity, it gates on CPU from the lane's execution time.
func TestASourceWithoutCPUMetricsSaysWhatItCannotSeeAndUsesTheFlags(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	const ns = "hidden"
	setup(t, ctx, ns, "telemetry")
	seed := func(name string) *appsv1.DaemonSet {
		setup(t, ctx, ns, name)
		return labtest.AgentDaemonSet(ns, name, "agent:v1", "- list: pods\n  every: 100ms\n")
	}
	_, decisions := rolloutWith(t, ctx, seed("blind"), bulkhead.Options{Waves: "25%,100%", Soak: 12 * time.Second}, withoutCPU)
	if len(decisions) == 0 {
		t.Fatal("no decision")
	}
	for _, d := range decisions {
		cpu, _ := d.Resource(check.CPU)
		seats, _ := d.Resource(check.Seats)
		if cpu.Limit.Known() || !strings.Contains(cpu.Blind, "CPU capacity is not visible") || !containsSome(d.Summary(), "not gated: the API servers' CPU capacity is not visible (no go_sched_gomaxprocs_threads): pass --apiserver-cpus") {
			t.Fatalf("a hidden CPU must be said, not gated as if infinite: CPU %+v, summary %q", cpu, d.Summary())
		}
		if !seats.Limit.Known() {
			t.Fatalf("the seats, which the metrics show, must still gate: %+v", seats.Limit)
		}
	}
	// Had the blind rollout completed, its agents would keep listing, now in the ordinary
	// service-accounts flow, and stand in the told rollout's baseline as collateral damage; had
	// it halted, its pods may still be going. They are gone before the told rollout starts.
	removeAgents(t, ctx, ns, "blind")
	final, told := rolloutWith(t, ctx, seed("told"), bulkhead.Options{Waves: "25%,100%", Soak: 12 * time.Second, APIServerCPUs: 2}, withoutCPU)
	halt := told[len(told)-1]
	cpu, _ := halt.Resource(check.CPU)
	if final.Phase != state.RolledBack || halt.Verdict != analyze.Halt || len(cpu.Halts) == 0 || cpu.Limit.From != "--apiserver-cpus" {
		t.Fatalf("told 2 cores, the seed's agent must be halted on CPU from its execution time: %s, %q, CPU %+v", final.Phase, halt.Reasons, cpu.Limit)
	}
	t.Logf("blind: %s", decisions[len(decisions)-1].Headline)
	t.Logf("told: %s", halt.Headline)
}

// removeAgents deletes a DaemonSet and waits until its pods, and with them their requests, are
// gone.
func removeAgents(t *testing.T, ctx context.Context, ns, name string) {
	t.Helper()
	foreground := metav1.DeletePropagationForeground
	// A rollout halted on seats (a loaded box inflates them) has deleted the DaemonSet itself.
	if err := lab.Client.AppsV1().DaemonSets(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &foreground}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("delete %s/%s: %v", ns, name, err)
	}
	for {
		_, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		pods, listErr := lab.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if apierrors.IsNotFound(err) && listErr == nil && len(pods.Items) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s/%s or its pods still there: %v, %v", ns, name, err, listErr)
		case <-time.After(time.Second):
		}
	}
}

func containsSome(lines []string, want string) bool {
	for _, l := range lines {
		if strings.Contains(l, want) {
			return true
		}
	}
	return false
}
