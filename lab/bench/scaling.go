package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"github.com/bulkhead-dev/bulkhead/lab/behavior"
	"github.com/bulkhead-dev/bulkhead/lab/cluster"
)

// ScalingOptions shape the scaling benchmark.
type ScalingOptions struct {
	Dir         string
	Nodes       int
	PodsPerNode int
	Services    int
	Steps       []int         // agent counts, increasing
	Every       time.Duration // each agent LISTs all pods this often
	Window      time.Duration // measurement window per step
	ProbeRate   int           // probe GETs per second
}

const (
	benchNamespace = "bench"
	agentLabel     = "bench.bulkhead.dev/telemetry"
	sloSingle      = time.Second // upstream SLO for single-object calls (p99)
)

// Row is one step's measurements.
type Row struct {
	Agents        int
	ListsPerSec   float64
	ListP50       float64
	ListP99       float64
	ListErrors    int64
	ProbeP50      float64
	ProbeP99      float64
	ProbeFailed   int
	APIServerCPU  float64 // cores
	ListBytesPerS float64
}

// Scaling runs the benchmark and prints its table to out, progress to log.
func Scaling(ctx context.Context, opts ScalingOptions, out, log io.Writer) error {
	if len(opts.Steps) == 0 || !slices.IsSorted(opts.Steps) || opts.Steps[len(opts.Steps)-1] > opts.Nodes || opts.Steps[0] <= 0 {
		return fmt.Errorf("steps %v must be increasing, positive and at most --nodes %d", opts.Steps, opts.Nodes)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return fmt.Errorf("bench dir: %w", err)
	}
	say := func(format string, args ...any) { fmt.Fprintf(log, "bench: "+format+"\n", args...) }
	labLog, err := os.Create(opts.Dir + "/bench-lab.log")
	if err != nil {
		return fmt.Errorf("bench log: %w", err)
	}
	defer labLog.Close()
	say("starting a lab of %d nodes × %d pods in %s", opts.Nodes, opts.PodsPerNode, opts.Dir)
	l, err := startLab(ctx, opts.Dir, []string{
		"--nodes", fmt.Sprint(opts.Nodes), "--pods-per-node", fmt.Sprint(opts.PodsPerNode), "--services", fmt.Sprint(opts.Services),
	}, labLog)
	if err != nil {
		return err
	}
	defer l.stop()
	st, err := l.status(ctx)
	if err != nil {
		return err
	}
	rss := labRSS(st)
	say("lab ready in %.1fs; resident memory %.0f MiB", l.startup.Seconds(), float64(rss)/(1<<20))

	if err := setupScaling(ctx, l, opts.Every); err != nil {
		return err
	}
	probe, err := newProbe(l.config)
	if err != nil {
		return err
	}
	var rows []Row
	for _, n := range opts.Steps {
		say("deploying the agent to %d nodes", n)
		if err := scaleAgents(ctx, l, n); err != nil {
			return err
		}
		// Past every agent's random start phase, so the window sees the steady schedule.
		if !sleepCtx(ctx, opts.Every+2*time.Second) {
			return ctx.Err()
		}
		row, err := measure(ctx, l, probe, n, opts)
		if err != nil {
			return err
		}
		say("%d agents: probe p99 %s, LIST p99 %s, apiserver %.2f cores", n, secs(row.ProbeP99), secs(row.ListP99), row.APIServerCPU)
		rows = append(rows, row)
	}
	if st, err = l.status(ctx); err == nil {
		rss = max(rss, labRSS(st))
	}
	printScaling(out, opts, l.startup, rss, rows)
	return nil
}

// setupScaling creates the agent DaemonSet (on no node yet) and the probe's identity.
func setupScaling(ctx context.Context, l *runningLab, every time.Duration) error {
	c := l.client
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNamespace}}
	if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("bench namespace: %w", err)
	}
	for _, sa := range []string{"telemetry", "probe"} {
		if _, err := c.CoreV1().ServiceAccounts(benchNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("service account %s: %w", sa, err)
		}
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-telemetry"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "configmaps"}, Verbs: []string{"get", "list", "watch"}}},
	}
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("bench role: %w", err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-telemetry"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.ServiceAccountKind, Namespace: benchNamespace, Name: "telemetry"},
			{Kind: rbacv1.ServiceAccountKind, Namespace: benchNamespace, Name: "probe"},
		},
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("bench binding: %w", err)
	}
	if _, err := c.CoreV1().ConfigMaps(benchNamespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe-target"}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("probe target: %w", err)
	}
	labels := map[string]string{"app": "telemetry"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "telemetry", Namespace: benchNamespace},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
					// The seed's agent: every pod LISTs every pod in the cluster (consistent read).
					behavior.Annotation: fmt.Sprintf("- list: pods\n  every: %s\n", every),
				}},
				Spec: corev1.PodSpec{
					ServiceAccountName: "telemetry",
					NodeSelector:       map[string]string{agentLabel: "true"},
					Containers:         []corev1.Container{{Name: "agent", Image: "example.invalid/telemetry:1"}},
				},
			},
		},
	}
	if _, err := c.AppsV1().DaemonSets(benchNamespace).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("agent DaemonSet: %w", err)
	}
	return nil
}

// scaleAgents labels the first n nodes for the agent and waits until n agents run.
func scaleAgents(ctx context.Context, l *runningLab, n int) error {
	patch := []byte(fmt.Sprintf(`{"metadata":{"labels":{%q:"true"}}}`, agentLabel))
	for i := 0; i < n; i++ {
		if _, err := l.client.CoreV1().Nodes().Patch(ctx, cluster.NodeName(i), types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("label node %s: %w", cluster.NodeName(i), err)
		}
	}
	return wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		ds, err := l.client.AppsV1().DaemonSets(benchNamespace).Get(ctx, "telemetry", metav1.GetOptions{})
		if err != nil {
			return false, nil // the apiserver may be too loaded to answer; keep waiting
		}
		return int(ds.Status.NumberReady) >= n, nil
	})
}

// measure runs the probe for one window and collects the agents' and the apiserver's numbers.
func measure(ctx context.Context, l *runningLab, p *probe, agents int, opts ScalingOptions) (Row, error) {
	row := Row{Agents: agents}
	if _, err := cluster.Call(ctx, l.dir, "GET", "/stats?reset=true"); err != nil {
		return row, err
	}
	st, err := l.status(ctx)
	if err != nil {
		return row, err
	}
	pid := st.ComponentPIDs["kube-apiserver"]
	cpu0, err := processCPU(pid)
	if err != nil {
		return row, err
	}
	start := time.Now()
	latencies, failed := p.run(ctx, opts.ProbeRate, opts.Window)
	elapsed := time.Since(start)
	cpu1, err := processCPU(pid)
	if err != nil {
		return row, err
	}
	body, err := cluster.Call(ctx, l.dir, "GET", "/stats?reset=true")
	if err != nil {
		return row, err
	}
	var stats []behavior.ActionStats
	if err := json.Unmarshal(body, &stats); err != nil {
		return row, fmt.Errorf("emulator stats: %w", err)
	}
	for _, s := range stats {
		if s.ServiceAccount == benchNamespace+"/telemetry" && s.Verb == behavior.VerbList {
			row.ListsPerSec = float64(s.Requests) / elapsed.Seconds()
			row.ListBytesPerS = float64(s.Bytes) / elapsed.Seconds()
			row.ListP50, row.ListP99, row.ListErrors = s.P50, s.P99, s.Errors
		}
	}
	row.ProbeP50, row.ProbeP99 = quantile(latencies, 0.50), quantile(latencies, 0.99)
	row.ProbeFailed = failed
	row.APIServerCPU = (cpu1 - cpu0).Seconds() / elapsed.Seconds()
	return row, nil
}

// probe GETs one ConfigMap as an ordinary service account on its own connection.
type probe struct {
	client *http.Client
	url    string
}

func newProbe(admin *rest.Config) (*probe, error) {
	cfg := rest.CopyConfig(admin)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + benchNamespace + ":probe",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + benchNamespace, "system:authenticated"},
	}
	// A distinct TLS config gives the probe its own connection, apart from the agents'.
	cfg.TLSClientConfig.ServerName = "kubernetes"
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("probe client: %w", err)
	}
	client.Timeout = 60 * time.Second
	return &probe{client: client, url: cfg.Host + "/api/v1/namespaces/" + benchNamespace + "/configmaps/probe-target"}, nil
}

// run sends rate GETs per second for window, each on its own goroutine so that a slow answer
// does not delay the next request (no coordinated omission), and returns their latencies.
func (p *probe) run(ctx context.Context, rate int, window time.Duration) ([]float64, int) {
	var (
		mu        sync.Mutex
		latencies []float64
		failed    int
		wg        sync.WaitGroup
	)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	deadline := time.After(window)
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return latencies, failed
		case <-deadline:
			wg.Wait()
			return latencies, failed
		case <-tick.C:
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				ok := p.get(ctx)
				d := time.Since(start).Seconds()
				mu.Lock()
				defer mu.Unlock()
				latencies = append(latencies, d)
				if !ok {
					failed++
				}
			}()
		}
	}
}

func (p *probe) get(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return false
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

func quantile(values []float64, q float64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	return sorted[min(len(sorted)-1, int(math.Ceil(q*float64(len(sorted))))-1)]
}

func labRSS(st cluster.Status) int64 {
	total, _ := processRSS(st.SupervisorPID)
	for _, pid := range st.ComponentPIDs {
		if rss, err := processRSS(pid); err == nil {
			total += rss
		}
	}
	return total
}

func printScaling(out io.Writer, opts ScalingOptions, startup time.Duration, rss int64, rows []Row) {
	fmt.Fprintf(out, "\nScaling: %d nodes × %d pods; each agent LISTs all pods every %s; probe: %d GET/s as an ordinary service account; window %s per step\n",
		opts.Nodes, opts.PodsPerNode, opts.Every, opts.ProbeRate, opts.Window)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "agents\tLIST/s\tLIST MB/s\tLIST p50\tLIST p99\tLIST errors\tprobe p50\tprobe p99\tprobe failed\tapiserver CPU\tGET SLO (p99 ≤ 1s)\t")
	for _, r := range rows {
		slo := "ok"
		if r.ProbeP99 > sloSingle.Seconds() || r.ProbeFailed > 0 {
			slo = "BROKEN"
		}
		fmt.Fprintf(w, "%d\t%.1f\t%.1f\t%s\t%s\t%d\t%s\t%s\t%d\t%.2f cores\t%s\t\n",
			r.Agents, r.ListsPerSec, r.ListBytesPerS/1e6, secs(r.ListP50), secs(r.ListP99), r.ListErrors, secs(r.ProbeP50), secs(r.ProbeP99), r.ProbeFailed, r.APIServerCPU, slo)
	}
	w.Flush()
	fmt.Fprintf(out, "\nLab start-up: %.1fs to %d nodes Ready and %d pods Running; resident memory of all lab processes: %.0f MiB\n",
		startup.Seconds(), opts.Nodes, opts.Nodes*opts.PodsPerNode, float64(rss)/(1<<20))
}

func secs(s float64) string {
	switch {
	case math.IsNaN(s):
		return "-"
	case s < 1:
		return fmt.Sprintf("%.0fms", s*1000)
	default:
		return fmt.Sprintf("%.2fs", s)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
