package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"testing"
	"text/tabwriter"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulkhead-dev/bulkhead/controller/hold"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// The benchmark's lab: the seed incident's size for a 2-core box.
const (
	benchNodes       = 200
	benchPodsPerNode = 20
)

// controllerSchema counts exactly the controller's requests: a FlowSchema of the bench's own
// sends its service account to workload-low, where it goes anyway, and
// apiserver_flowcontrol_dispatched_requests_total{flow_schema="bench-controller"} counts them.
// (Rollbacks may go through the break-glass lane as another identity: counted apart.)
const controllerSchema = "bench-controller"

// The seed incident's telemetry at its real period: every agent LISTs every pod every 10 s.
const seedAgent10s = "- list: pods\n  every: 10s\n"

// BenchmarkController runs the controller as its own service account on the 200 × 20 lab, with
// the product's defaults everywhere (policy waves, soak and budget left out), and prints two
// tables: the acceptance scenarios (the seed's agent applied with plain client calls and
// re-applied every 5 s for 5 minutes; a watch-based agent), and
// the controller's own cost (API requests per minute idle and per rollout, memory with 100
// guarded DaemonSets, time from a create to the DaemonSet held). It asserts nothing.
func BenchmarkController(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchController(b)
	}
}

type scenarioRow struct {
	name, outcome, decision, p99, cost, took string
	nodes                                    int
	requests                                 float64
}

// scenario applies an agent with a plain create in namespace ns (a policy of that name is made
// from spec unless nil: it exists already), re-applies its manifest every 5 s for reapplyFor
// when that is not 0, and waits for its rollout to end.
func scenario(b *testing.B, ctx context.Context, title, ns, name, behavior string, spec map[string]any, reapplyFor time.Duration) scenarioRow {
	if err := lab.ServiceAccount(ctx, ns, name, "view"); err != nil {
		b.Fatal(err)
	}
	if spec != nil {
		spec["namespaces"] = []any{ns}
		createPolicy(b, ctx, ns, spec, ns) // admission holds in the policy's namespace: wait for it
		seenByController(b, ctx, ns)
	}
	manifest := labtest.AgentDaemonSet(ns, name, "agent:v1", behavior)
	o := follow(b, ns, name)
	probe := probeP99(b, ctx)
	start, before := time.Now(), dispatchedBy(b, ctx, controllerSchema)
	if _, err := lab.Client.AppsV1().DaemonSets(ns).Create(ctx, manifest.DeepCopy(), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	stop := func() int { return 0 }
	if reapplyFor > 0 {
		stop = reapplier(b, ctx, manifest)
	}
	st := waitRollout(b, ctx, ns, name, 30*time.Minute, title+" decided", func(s state.State) bool { return s.Terminal() })
	took := time.Since(start)
	requests := dispatchedBy(b, ctx, controllerSchema) - before
	time.Sleep(time.Until(start.Add(reapplyFor)))
	reapplies := stop()
	p99, failed := probe()
	outcome := fmt.Sprintf("%s after wave %d", st.Phase, haltedWave(st))
	switch {
	case st.WouldHalt != nil:
		outcome = string(st.Phase) + ", guard would have halted"
	case st.Phase == state.Complete:
		outcome = string(st.Phase)
	}
	if reapplyFor > 0 {
		outcome += fmt.Sprintf("; %d rollout(s) through %d re-applies", len(o.rollouts()), reapplies)
	}
	_ = lab.Client.AppsV1().DaemonSets(ns).Delete(ctx, name, metav1.DeleteOptions{})
	return scenarioRow{name: title, nodes: o.nodesEver(), outcome: outcome, decision: headline(st), requests: requests,
		p99: fmt.Sprintf("%v (%d failed)", p99.Round(time.Millisecond), failed), cost: perMinute(requests, took), took: took.Round(time.Second).String()}
}

func benchController(b *testing.B) {
	ctx := context.Background()
	install(b, ctx)
	countController(b, ctx)
	ctl := startReplica(b, labtest.Bulkhead(b), controllerKubeconfig(b, ctx), "bench-controller")
	costRows := [][2]string{}

	// Idle: a policy, nothing to roll out.
	createPolicy(b, ctx, "bench-seed", map[string]any{"namespaces": []any{"bench-seed"}}, "bench-seed")
	seenByController(b, ctx, "bench-seed")
	idle := requestsPerMinute(b, ctx, 2*time.Minute)
	costRows = append(costRows, [2]string{"API requests/min, idle (a policy, nothing held)", fmt.Sprintf("%.1f", idle)})

	// The seed's agent, re-applied every 5 s for 5 minutes by a GitOps tool; a watch-based
	// agent (its API cost is one whole rollout's). Not the seed's agent under observe: on every
	// node of this lab it takes the API server down (the demo's unguarded run), and every row
	// after it would measure a recovering server; TestTheSeedsAgentIsHaltedAfterWaveOneThrough…
	// runs observe on 12 nodes.
	rows := []scenarioRow{
		scenario(b, ctx, "seed-agent, re-applied every 5 s for 5 min", "bench-seed", "telemetry", seedAgent10s, nil, 5*time.Minute),
		scenario(b, ctx, "watch-agent", "bench-watch", "agent", watchAgent, map[string]any{}, 0),
	}
	w := rows[1]
	costRows = append(costRows, [2]string{"API requests per rollout (watch agent, waves 2, 10, 50, 200 nodes)", fmt.Sprintf("%.0f over %s (%s/min)", w.requests, w.took, w.cost)})

	// 100 guarded DaemonSets: the time each create takes to come back held (admission is in
	// the API server), then the controller with 100 in its care (3 rolling, the rest waiting).
	{
		const ns, outside = "bench-scale", "bench-unscoped"
		createPolicy(b, ctx, "bench-scale", map[string]any{"namespaces": []any{ns}}, ns)
		namespace(b, ctx, outside, nil)
		create := func(ns string, i int) time.Duration {
			ds := agent(ns, fmt.Sprintf("agent-%03d", i), "agent:v1")
			start := time.Now()
			out, err := lab.Client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{})
			took := time.Since(start)
			if err != nil {
				b.Fatalf("create %s/%s: %v", ns, ds.Name, err)
			}
			if ns != outside && hold.Held(out) != hold.HeldCreate {
				b.Fatalf("%s/%s came back unheld", ns, ds.Name)
			}
			return took
		}
		var held, free []time.Duration
		for i := range 100 {
			held = append(held, create(ns, i))
			if i < 30 {
				free = append(free, create(outside, i))
			}
		}
		costRows = append(costRows, [2]string{"create → held (the create call, admission inside it), median / p90", quantiles(held)},
			[2]string{"create out of any policy's scope, median / p90", quantiles(free)})
		perMin := requestsPerMinute(b, ctx, 2*time.Minute)
		m := ctl.scrape(b)
		costRows = append(costRows,
			[2]string{"memory with 100 guarded DaemonSets (3 rolling, 97 waiting): resident / heap in use",
				fmt.Sprintf("%.0f MiB / %.0f MiB", m["process_resident_memory_bytes"][""]/(1<<20), m["go_memstats_heap_inuse_bytes"][""]/(1<<20))},
			[2]string{"API requests/min with them (3 rollouts under way)", fmt.Sprintf("%.1f", perMin)})
		for _, n := range []string{ns, outside} {
			_ = lab.Client.AppsV1().DaemonSets(n).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		}
	}
	printTables(rows, costRows)
	noForbidden(b, ctl)
}

// countController puts in the FlowSchema that counts the controller's requests.
func countController(b testing.TB, ctx context.Context) {
	fs := &flowcontrolv1.FlowSchema{ObjectMeta: metav1.ObjectMeta{Name: controllerSchema}, Spec: flowcontrolv1.FlowSchemaSpec{
		PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "workload-low"}, MatchingPrecedence: 800,
		Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
			Subjects: []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindServiceAccount,
				ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Namespace: hold.ControllerNamespace, Name: hold.ControllerServiceAccount}}},
			ResourceRules:    []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, ClusterScope: true, Namespaces: []string{"*"}}},
			NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
		}}}}
	if _, err := lab.Client.FlowcontrolV1().FlowSchemas().Create(ctx, fs, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
}

func dispatchedBy(b testing.TB, ctx context.Context, schema string) float64 {
	return flowTotals(b, ctx, schema).dispatched
}

// requestsPerMinute counts the controller's requests over d.
func requestsPerMinute(b testing.TB, ctx context.Context, d time.Duration) float64 {
	before, start := dispatchedBy(b, ctx, controllerSchema), time.Now()
	time.Sleep(d)
	return (dispatchedBy(b, ctx, controllerSchema) - before) / time.Since(start).Minutes()
}

func perMinute(requests float64, d time.Duration) string {
	return fmt.Sprintf("%.0f", requests/d.Minutes())
}

func haltedWave(st state.State) int {
	if st.Halted != nil {
		return st.Halted.Wave
	}
	return st.Wave
}

// headline is the decision a rollout ended on, with its CPU prediction against the budget.
func headline(st state.State) string {
	rec := st.Halted
	if rec == nil {
		rec = st.WouldHalt
	}
	if rec == nil && len(st.History) > 0 {
		rec = &st.History[len(st.History)-1]
	}
	if rec == nil {
		return st.Reason
	}
	if p := rec.Resources[check.CPU].Predicted; p != nil {
		return fmt.Sprintf("wave %d: %d agents; fleet %s vs budget %s", rec.Wave, rec.New, check.Range(check.CPU, p.Mean, p.Low, p.High), check.Amount(check.CPU, st.Limits[check.CPU].Value))
	}
	return rec.Headline
}

func quantiles(d []time.Duration) string {
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("%v / %v", s[len(s)/2].Round(100*time.Microsecond), s[len(s)*9/10].Round(100*time.Microsecond))
}

func printTables(rows []scenarioRow, cost [][2]string) {
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "\nbulkhead controller, %d nodes × %d pods, defaults (waves %s, soak 60s, budget %s)\n", benchNodes, benchPodsPerNode, "1%,5%,25%,100%", check.DefaultBudget)
	fmt.Fprintln(w, "scenario\toutcome\tnodes ever\tdecision\tordinary GET p99\tcontroller req/min\ttime to decision")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.name, r.outcome, r.nodes, r.decision, r.p99, r.cost, r.took)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "controller's own cost\t")
	for _, c := range cost {
		fmt.Fprintf(w, "%s\t%s\n", c[0], c[1])
	}
	w.Flush()
}
