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
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/plan"
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

// rollout starts a rollout of a new DaemonSet the way `bulkhead rollout apply` will, and runs
// it to its end with a real scraper.
func rollout(t *testing.T, ctx context.Context, ds *appsv1.DaemonSet, waves string, budgetPercent float64) (state.State, []analyze.Decision) {
	t.Helper()
	scraper, err := controlplane.NewScraper(lab.Config, controlplane.Options{})
	if err != nil {
		t.Fatalf("NewScraper: %v", err)
	}
	scraper.WaitForDiscovery(ctx, 10*time.Second)
	first := scraper.Scrape(ctx)
	time.Sleep(2 * time.Second)
	before := controlplane.Analyze(first, scraper.Scrape(ctx))

	nodeList, err := lab.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	eligible := len(plan.Eligible(ds.Spec.Template.Spec, nodeList.Items))
	parsed, err := plan.ParseWaves(waves)
	if err != nil {
		t.Fatalf("ParseWaves: %v", err)
	}
	steps, err := plan.Resolve(parsed, eligible)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	var targets []int
	for _, s := range steps {
		targets = append(targets, s.Target)
	}
	const serverSeats = 600
	budget, err := execute.BudgetSeats(serverSeats, budgetPercent)
	if err != nil {
		t.Fatalf("BudgetSeats: %v", err)
	}
	lane := execute.LaneNames(ds.Namespace, ds.Name)
	st, err := state.New(state.Start{
		ID: "e2e-" + ds.Name, Kind: state.Create, WavesSpec: waves, Targets: targets, Eligible: eligible,
		Soak: 12 * time.Second, BudgetPercent: budgetPercent, BudgetSeats: float64(budget),
		Lane: lane, NodeLabel: execute.NodeLabelKey(ds.Namespace, ds.Name), OriginalStrategy: ds.Spec.UpdateStrategy,
	}, time.Now())
	if err != nil {
		t.Fatalf("state.New: %v", err)
	}
	if _, err := execute.EnsureLane(ctx, lab.Client, lane, "daemonset/"+ds.Namespace+"/"+ds.Name, execute.ServiceAccountOf(ds), serverSeats, budget); err != nil {
		t.Fatalf("EnsureLane: %v", err)
	}
	if _, err := execute.StartCreate(ctx, lab.Client, ds, st); err != nil {
		t.Fatalf("StartCreate: %v", err)
	}
	var decisions []analyze.Decision
	runner := &execute.Runner{
		Client: lab.Client,
		Watcher: &soak.Soaker{Scraper: scraper, Client: lab.Client, Before: before, Interval: 2 * time.Second,
			Limits: analyze.Limits{Settle: 4 * time.Second}},
		Log:       func(line string) { t.Log(line) },
		Decisions: func(d analyze.Decision) { decisions = append(decisions, d) },
	}
	final, err := runner.Run(ctx, ds.Namespace, ds.Name)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return final, decisions
}

func TestAWellBehavedAgentReachesTheWholeFleet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, name = "good", "agent"
	setup(t, ctx, ns, name)
	ds := labtest.AgentDaemonSet(ns, name, "agent:v1", "- watch: pods\n  fieldSelector: spec.nodeName=$(NODE_NAME)\n")
	final, decisions := rollout(t, ctx, ds, "25%,100%", 10)
	if final.Phase != state.Complete {
		t.Fatalf("phase %s (reason %q), want Complete", final.Phase, final.Reason)
	}
	if len(decisions) != 2 {
		t.Fatalf("%d decisions, want one per wave", len(decisions))
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
	// Every agent LISTs every pod of the cluster, often: cost per agent ∝ cluster size.
	ds := labtest.AgentDaemonSet(ns, name, "agent:v1", "- list: pods\n  every: 100ms\n")
	// 0.2% of 600 seats is 1 seat. On a quiet box 3 agents hold ~0.6 seats, so 12 would need ~2.5
	// (95%: 1.9–3.0): far over 1 seat, while a 3-seat budget (0.5%) let them through — correctly —
	// in a clean-clone CI run. A loaded box only makes each LIST, and the prediction, dearer.
	final, decisions := rollout(t, ctx, ds, "25%,100%", 0.2)
	if final.Phase != state.RolledBack {
		t.Fatalf("phase %s, want RolledBack", final.Phase)
	}
	if len(decisions) != 1 || decisions[0].Verdict != analyze.Halt {
		t.Fatalf("decisions %d, first %+v; want a halt after wave 1", len(decisions), decisions)
	}
	if !strings.Contains(decisions[0].Headline, "halting") || decisions[0].Prediction == nil {
		t.Fatalf("headline %q", decisions[0].Headline)
	}
	if _, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the halted new DaemonSet still exists: %v", err)
	}
	if _, err := lab.Client.FlowcontrolV1().FlowSchemas().Get(ctx, execute.LaneNames(ns, name).FlowSchema, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the lane outlived the rollback: %v", err)
	}
}
