// Package bench measures guarded rollouts end to end on the lab at the seed incident's size for a
// 2-core box (200 nodes × 20 pods): `bulkhead rollout apply` run as a user does, with bulkhead's
// default budget, as its own (non-exempt) identity, while an ordinary client probes the API. It
// prints tables and asserts nothing (`make bench`); the lab starts only when benchmarks are
// asked for, so `go test ./...` does not pay for it.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/internal/cli"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/report"
)

var lab *labtest.Lab

const (
	nodes       = 200
	podsPerNode = 20
)

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run()) // no benchmark asked for: no lab
	}
	os.Exit(labtest.Run(m, labtest.Options{Nodes: nodes, PodsPerNode: podsPerNode, Services: 50, StartTimeout: 10 * time.Minute}, &lab))
}

// bulkhead runs as this user, a cluster admin by RBAC but not in system:masters, so APF does not
// exempt it; the bench's own FlowSchema sends exactly its requests to global-default, where
// apiserver_flowcontrol_dispatched_requests_total{flow_schema=benchSchema} counts them.
const (
	benchUser   = "bulkhead-bench"
	benchSchema = "bench-bulkhead"
)

// The agents, as their pods' behaviour in the lab (each agent's service account is bound to
// view, so its requests succeed).
const (
	// Watches its own node's pods: one LIST at start, then events only.
	watchAgent = "- watch: pods\n  fieldSelector: spec.nodeName=$(NODE_NAME)\n"
	// Lists its own node's pods from the watch cache (resourceVersion 0) every 5 s, as a
	// careful node agent does. Measured in this lab (BenchmarkCostPerAgent): 200 of them use
	// about 0.2 cores, two fifths of the default CPU budget (0.5 of 2 cores).
	moderateAgent = "- list: pods\n  fieldSelector: spec.nodeName=$(NODE_NAME)\n  resourceVersion: \"0\"\n  every: 5s\n"
	// The seed incident's telemetry: every agent LISTs every pod of the cluster every 10 s.
	seedAgent = "- list: pods\n  every: 10s\n"
)

type scenario struct{ name, behavior string }

var scenarios = []scenario{{"watch-agent", watchAgent}, {"moderate-agent", moderateAgent}, {"seed-agent", seedAgent}}

const (
	waves = "1%,5%,25%,100%"
	soakD = "30s"
)

// BenchmarkRollout runs each agent's rollout with the default budget and prints, per wave, what
// was measured and predicted in CPU, memory and seats, and per run the prediction's error at
// 100% (CPU: the servers' CPU with the agents minus without, from /metrics), the time from wave
// 1's agents Ready to its decision, the nodes ever exposed, the time an ordinary GET's p99 spent
// above 1 s, and bulkhead's own requests per minute.
func BenchmarkRollout(b *testing.B) {
	ctx := context.Background()
	identity(b, ctx)
	probe := startProbe(b, ctx)
	var rows []runRow
	for _, sc := range scenarios {
		b.Run(sc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				rows = append(rows, run(b, ctx, probe, sc, fmt.Sprintf("bench-%s-%d", sc.name, i)))
			}
		})
	}
	printRuns(rows)
}

type runRow struct {
	scenario       string
	outcome        string
	steps          []report.Step
	budgets        []report.Budget
	readyToDecide  float64
	nodesExposed   int
	outsideSLO     time.Duration
	probeP99       time.Duration
	requestsPerMin float64
	elapsed        time.Duration
	// cpuTruth is the servers' CPU with the whole fleet's requests on minus off, when it
	// completed (truthAfterRollout).
	cpuTruth, cpuTruthSE float64
}

func run(b *testing.B, ctx context.Context, probe *probeWatch, sc scenario, ns string) runRow {
	const name = "agent"
	if err := lab.ServiceAccount(ctx, ns, name, "view"); err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(b.TempDir(), "ds.yaml")
	if err := os.WriteFile(file, []byte(manifest(ns, name, sc.behavior)), 0o600); err != nil {
		b.Fatal(err)
	}
	exposed := watchNodes(b, ctx, ns)
	probe.reset()
	before := counted(b, ctx)
	reportFile := filepath.Join(b.TempDir(), "rollout.json")

	var out bytes.Buffer
	root := cli.NewRootCommand(&out, &out)
	root.SetArgs([]string{"--kubeconfig", lab.Kubeconfig, "--as", benchUser, "rollout", "apply", "-f", file,
		"--waves", waves, "--soak", soakD, "--report", reportFile})
	start := time.Now()
	err := root.ExecuteContext(ctx)
	elapsed := time.Since(start)
	row := runRow{scenario: sc.name, elapsed: elapsed, requestsPerMin: (counted(b, ctx) - before) / elapsed.Minutes()}
	row.outsideSLO, row.probeP99 = probe.result()
	row.nodesExposed = exposed.stop()
	if err != nil && !strings.Contains(err.Error(), "rolled back") {
		b.Fatalf("rollout apply: %v\n%s", err, out.String())
	}
	var r report.Report
	data, err := os.ReadFile(reportFile)
	if err != nil {
		b.Fatalf("the rollout wrote no report: %v", err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		b.Fatalf("report: %v", err)
	}
	row.outcome, row.steps, row.budgets = r.Outcome, r.Steps, r.Budgets
	for _, s := range r.Steps {
		if s.Wave == 1 {
			row.readyToDecide = s.ReadyToDecision
		}
	}
	fmt.Printf("--- %s: bulkhead's output:\n%s\n", sc.name, out.String())
	if r.Phase == "Complete" {
		truth := truthAfterRollout(b, ctx, ns, name, sc.behavior)
		row.cpuTruth, row.cpuTruthSE = truth.mean, truth.se
	}
	propagation := metav1.DeletePropagationBackground
	_ = lab.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{PropagationPolicy: &propagation})
	time.Sleep(30 * time.Second) // the agents' pods go before the next run starts
	return row
}

// The truth's windows: the fleet's requests off, on, off, … (truthCycles times on), each
// truthWindow long after truthSettle for the switch to take hold on every pod.
const (
	truthCycles = 3
	truthWindow = 45 * time.Second
	truthSettle = 15 * time.Second
)

// truthAfterRollout is what the whole fleet costs the API servers in CPU: with its pods kept
// where they run and only their requests switched off and on (the lab's behaviour annotation),
// each window on minus the mean of the windows off on either side, averaged over the cycles,
// with the error from their spread. Alternating cancels a slow drift of the servers' own CPU
// (a lab settling after its start, a compaction) that one minute with and one without would
// charge to the agents; keeping the pods keeps everything else — scheduling, kubelet status,
// watch events — the same.
func truthAfterRollout(b *testing.B, ctx context.Context, ns, name, behavior string) meanSE {
	requests := func(on bool) {
		switched := ""
		if on {
			switched = behavior
		}
		if err := lab.Behave(ctx, ns, name, switched); err != nil {
			b.Fatalf("switching the fleet's requests: %v", err)
		}
		time.Sleep(truthSettle)
	}
	var off, on []float64
	for i := 0; i < truthCycles; i++ {
		requests(false)
		off = append(off, cpuOver(b, ctx, truthWindow).mean)
		requests(true)
		on = append(on, cpuOver(b, ctx, truthWindow).mean)
	}
	requests(false)
	off = append(off, cpuOver(b, ctx, truthWindow).mean)
	var differences []float64
	for i, v := range on {
		differences = append(differences, v-(off[i]+off[i+1])/2)
	}
	return spread(differences)
}

// printRuns prints the runs' tables: a row per wave of each run, then a row per run.
func printRuns(rows []runRow) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "agent\twave\tagents\tCPU measured\tCPU predicted at 100%\tmemory measured\tmemory predicted\tseats measured\tseats predicted\tverdict")
	for _, r := range rows {
		for _, s := range r.steps {
			cells := []string{r.scenario, s.Label, fmt.Sprint(s.New + s.Old)}
			for _, res := range check.Resources {
				m := s.Resources[string(res)]
				pred := "-"
				if p := m.Predicted; p != nil {
					pred = check.Range(res, p.Mean, p.Low, p.High)
				}
				cells = append(cells, check.Amount(res, m.Measured), pred)
			}
			fmt.Fprintln(tw, strings.Join(append(cells, s.Verdict), "\t"))
		}
	}
	tw.Flush()
	fmt.Println()
	fmt.Fprintln(tw, "agent\toutcome\twave 1 CPU predicted\tCPU at 100%: with − without\terror\tready → decision\tnodes exposed\tmin outside SLO\tprobe p99 worst\tbulkhead req/min\trollout")
	for _, r := range rows {
		wave1, truth, errPct := "-", "-", "-"
		for _, s := range r.steps {
			if p := s.Resources[string(check.CPU)].Predicted; s.Wave == 1 && p != nil {
				wave1 = check.Range(check.CPU, p.Mean, p.Low, p.High)
				if r.cpuTruth > 0 {
					errPct = fmt.Sprintf("%+.0f%%", 100*(p.Mean-r.cpuTruth)/r.cpuTruth)
				}
			}
		}
		if r.cpuTruth != 0 {
			truth = fmt.Sprintf("%.3f ± %.3f cores", r.cpuTruth, r.cpuTruthSE)
		}
		outcome, _, _ := strings.Cut(r.outcome, ":")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f s\t%d\t%.2f\t%v\t%.0f\t%v\n", r.scenario, outcome, wave1, truth, errPct,
			r.readyToDecide, r.nodesExposed, r.outsideSLO.Minutes(), r.probeP99.Round(time.Millisecond), r.requestsPerMin, r.elapsed.Round(time.Second))
	}
	tw.Flush()
}

func manifest(ns, name, behavior string) string {
	indented := "          " + strings.ReplaceAll(strings.TrimSuffix(behavior, "\n"), "\n", "\n          ")
	return fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  selector:
    matchLabels: {app: %[2]s}
  template:
    metadata:
      labels: {app: %[2]s}
      annotations:
        %[3]s: |
%[4]s
    spec:
      serviceAccountName: %[2]s
      containers:
      - {name: agent, image: "agent:v1"}
`, ns, name, labtest.BehaviorAnnotation, indented)
}

// identity makes benchUser a cluster admin outside system:masters and gives it its own
// FlowSchema, in global-default, so its requests are counted apart from everyone's.
func identity(b *testing.B, ctx context.Context) {
	c := lab.Client
	_, err := c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: benchUser},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: benchUser}}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatalf("bind %s: %v", benchUser, err)
	}
	_, err = c.FlowcontrolV1().FlowSchemas().Create(ctx, &flowcontrolv1.FlowSchema{ObjectMeta: metav1.ObjectMeta{Name: benchSchema},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "global-default"},
			MatchingPrecedence:         1000,
			DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects: []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: benchUser}}},
				ResourceRules: []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"},
					ClusterScope: true, Namespaces: []string{"*"}}},
				NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
			}},
		}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatalf("flow schema %s: %v", benchSchema, err)
	}
}

// counted is how many of benchUser's requests the API server has dispatched.
func counted(b *testing.B, ctx context.Context) float64 {
	n, err := lab.FlowCounter(ctx, "apiserver_flowcontrol_dispatched_requests_total", benchSchema)
	if err != nil {
		b.Fatalf("count bulkhead's requests: %v", err)
	}
	return n
}

// nodeWatch records every node on which a pod of the namespace was ever bound.
type nodeWatch struct {
	mu    sync.Mutex
	nodes map[string]bool
	stopF func()
}

func watchNodes(b *testing.B, ctx context.Context, ns string) *nodeWatch {
	w := &nodeWatch{nodes: map[string]bool{}}
	ctx, cancel := context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactoryWithOptions(lab.Client, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().Pods().Informer()
	record := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			w.mu.Lock()
			w.nodes[p.Spec.NodeName] = true
			w.mu.Unlock()
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: record, UpdateFunc: func(_, o any) { record(o) }}); err != nil {
		b.Fatalf("pod handler: %v", err)
	}
	factory.Start(ctx.Done())
	cache.WaitForCacheSync(ctx.Done(), inf.HasSynced)
	w.stopF = func() { cancel(); factory.Shutdown() }
	return w
}

func (w *nodeWatch) stop() int {
	w.stopF()
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.nodes)
}

// probeWatch is an ordinary client GETting a ConfigMap 10 times a second for the whole bench;
// per run it adds up the 5-second windows whose p99 was above the 1 s SLO, and the worst p99.
type probeWatch struct {
	mu      sync.Mutex
	outside time.Duration
	worst   time.Duration
}

func startProbe(b *testing.B, ctx context.Context) *probeWatch {
	const ns = "bench-probe"
	if err := lab.ServiceAccount(ctx, ns, "probe", "view"); err != nil {
		b.Fatal(err)
	}
	_, err := lab.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "target"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	p, err := labtest.NewAPIProbe(lab.Config, ns, "probe", "target")
	if err != nil {
		b.Fatal(err)
	}
	w := &probeWatch{}
	go p.Run(ctx, 10)
	go func() {
		for range time.Tick(5 * time.Second) {
			latencies, failed, stuck := p.Take(time.Second)
			slices.Sort(latencies)
			var p99 time.Duration
			if n := len(latencies); n > 0 {
				p99 = time.Duration(latencies[min(n-1, n*99/100)] * float64(time.Second))
			}
			if stuck > 0 || failed > 0 {
				p99 = max(p99, time.Second+1)
			}
			w.mu.Lock()
			w.worst = max(w.worst, p99)
			if p99 > time.Second {
				w.outside += 5 * time.Second
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *probeWatch) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.outside, w.worst = 0, 0
}

func (w *probeWatch) result() (outside, worst time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.outside, w.worst
}

// meanSE is a mean with its standard error.
type meanSE struct{ mean, se float64 }

// cpuOver is the API server's mean CPU over d, from its /metrics every 5 s (batch means for the
// error: consecutive intervals are not independent).
func cpuOver(b *testing.B, ctx context.Context, d time.Duration) meanSE {
	scraper, err := controlplane.NewScraper(lab.Config, controlplane.Options{})
	if err != nil {
		b.Fatal(err)
	}
	prev := scraper.Scrape(ctx)
	var values []float64
	for end := time.Now().Add(d); time.Now().Before(end); {
		time.Sleep(5 * time.Second)
		cur := scraper.Scrape(ctx)
		values = append(values, controlplane.Analyze(prev, cur).Resources.CPUCores)
		prev = cur
	}
	return batchMeans(values)
}

// batchMeans is the mean of values and its error from the spread of means of batches of 3.
func batchMeans(values []float64) meanSE {
	var batches []float64
	for i := 0; i+3 <= len(values); i += 3 {
		batches = append(batches, (values[i]+values[i+1]+values[i+2])/3)
	}
	return meanSE{mean: spread(values).mean, se: spread(batches).se}
}

// spread is the mean of independent values and its standard error.
func spread(values []float64) meanSE {
	var m meanSE
	for _, v := range values {
		m.mean += v
	}
	k := float64(len(values))
	m.mean /= k
	if k > 1 {
		var ss float64
		for _, v := range values {
			ss += (v - m.mean) * (v - m.mean)
		}
		m.se = math.Sqrt(ss / (k - 1) / k)
	}
	return m
}
