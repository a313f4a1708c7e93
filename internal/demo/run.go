package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
	"github.com/bulkhead-dev/bulkhead/rollout/report"
)

// Options shape a demo.
type Options struct {
	Dir            string // state, logs and the report
	BulkheadBinary string
	CoreDNSBinary  string
	Nodes          int
	PodsPerNode    int
	Services       int
	// AgentEvery is how often each telemetry agent LISTs every pod in the cluster.
	AgentEvery time.Duration
	// Duration is how long each run is observed after the DaemonSet is applied.
	Duration time.Duration
	// RestartDNSAt is when both DNS servers are restarted, into each run.
	RestartDNSAt time.Duration
	// Waves and Soak are passed to `bulkhead rollout apply` in the guarded run; its budget is
	// bulkhead's default.
	Waves, Soak string
	// Interval is the sampling interval.
	Interval time.Duration
	// APIServerMemoryLimit is passed to the lab (e.g. "3Gi"): production apiservers run with a
	// memory limit, and the seed's fell over at theirs. Empty runs the apiserver unconfined.
	APIServerMemoryLimit string
}

// DefaultOptions are `make demo`'s, sized for a 2-core machine: big enough that the seed's agent
// on every node breaks the apiserver, small enough to start in well under a minute.
func DefaultOptions() Options {
	return Options{
		Dir:                  ".lab/demo",
		Nodes:                200,
		PodsPerNode:          20,
		Services:             50,
		AgentEvery:           10 * time.Second,
		Duration:             3 * time.Minute,
		RestartDNSAt:         90 * time.Second,
		Waves:                "1%,5%,25%,100%",
		Soak:                 "30s",
		Interval:             2 * time.Second,
		APIServerMemoryLimit: "768Mi",
	}
}

const (
	agentNamespace = "telemetry"
	agentName      = "telemetry"
	probeNamespace = "demo"
)

// Replay runs the unguarded and the guarded replay, one after the other, each on a fresh lab.
func Replay(ctx context.Context, opts Options, progress io.Writer) ([]Run, error) {
	var runs []Run
	for _, mode := range []Mode{Unguarded, Guarded} {
		run, err := replay(ctx, opts, mode, progress)
		if err != nil {
			return runs, fmt.Errorf("%s run: %w", mode, err)
		}
		runs = append(runs, run)
	}
	return runs, nil
}

func replay(ctx context.Context, opts Options, mode Mode, progress io.Writer) (Run, error) {
	run := Run{Mode: mode, Nodes: opts.Nodes}
	say := func(format string, args ...any) {
		fmt.Fprintf(progress, "[%-9s] "+format+"\n", append([]any{mode}, args...)...)
	}

	// Each run starts from nothing: a DNS snapshot or lab left by an earlier demo would not be
	// the same cluster state. Its logs stay until the next demo, next to the report.
	dir := filepath.Join(opts.Dir, string(mode))
	if err := os.RemoveAll(dir); err != nil {
		return run, fmt.Errorf("demo dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return run, fmt.Errorf("demo dir: %w", err)
	}
	say("starting a lab: %d nodes × %d pods, %d services (real etcd, kube-apiserver, controllers)", opts.Nodes, opts.PodsPerNode, opts.Services)
	labOpts := labtest.Options{Nodes: opts.Nodes, PodsPerNode: opts.PodsPerNode, Services: opts.Services}
	if opts.APIServerMemoryLimit != "" {
		labOpts.ExtraArgs = []string{"--apiserver-memory-limit", opts.APIServerMemoryLimit}
	}
	lab, err := labtest.StartIn(filepath.Join(dir, "lab"), labOpts)
	if err != nil {
		return run, err
	}
	defer lab.Close()

	kubeconfigs, err := setupIdentities(ctx, lab, dir)
	if err != nil {
		return run, err
	}
	servers, probes, err := startDNS(opts, dir, kubeconfigs)
	if err != nil {
		return run, err
	}
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	say("CoreDNS v1.15.0 and bulkhead dns answer the lab's Service names; the probes start")

	api, err := labtest.NewAPIProbe(lab.Config, probeNamespace, "probe", "probe-target")
	if err != nil {
		return run, err
	}
	scraper, err := controlplane.NewScraper(lab.Config, controlplane.Options{})
	if err != nil {
		return run, err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	scraper.Start(runCtx)
	var events eventLog
	rec := &recorder{interval: opts.Interval, start: time.Now(), api: api, dns: probes, scraper: scraper, client: lab.Client, lab: lab, events: &events, samples: make(chan Sample, 1)}
	rec.agent.namespace, rec.agent.name = agentNamespace, agentName
	go api.Run(runCtx, 10)
	for _, p := range probes {
		go p.run(runCtx, 20)
	}
	var samples []Sample
	recorded := make(chan struct{})
	go func() { samples = rec.run(runCtx); close(recorded) }()
	go liveView(runCtx, rec.samples, say)

	events.start = rec.start
	ds := telemetryDaemonSet(opts.AgentEvery)
	var rollout *rolloutProcess
	switch mode {
	case Unguarded:
		if _, err := lab.Client.AppsV1().DaemonSets(agentNamespace).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
			return run, fmt.Errorf("apply the telemetry DaemonSet: %w", err)
		}
		events.add("telemetry DaemonSet applied to every node, the ordinary way")
		say("telemetry DaemonSet applied to all %d nodes: every agent LISTs every pod every %s", opts.Nodes, opts.AgentEvery)
	case Guarded:
		if err := runBulkhead(ctx, opts.BulkheadBinary, lab.Kubeconfig, "install"); err != nil {
			return run, err
		}
		events.add("break-glass lane installed")
		manifest := filepath.Join(dir, "telemetry.yaml")
		if err := writeManifest(manifest, ds); err != nil {
			return run, err
		}
		rollout, err = startRollout(opts, lab.Kubeconfig, manifest, filepath.Join(dir, "rollout.html"), func(line string) {
			events.add("rollout: " + line)
			say("bulkhead rollout: %s", line)
		})
		if err != nil {
			return run, err
		}
		events.add("bulkhead rollout apply started")
		say("bulkhead rollout apply -f telemetry.yaml --waves %s --soak %s", opts.Waves, opts.Soak)
	}

	if !sleep(ctx, opts.RestartDNSAt) {
		return run, ctx.Err()
	}
	if restarts, looping := apiServerRestarts(ctx, lab); looping {
		say("the apiserver is crash-looping: restarting the DNS servers at its next death, when a restarted DNS pod needs it most")
		awaitNextDeath(ctx, lab, restarts, time.Minute)
	}
	run.DNSRestartAt = time.Since(rec.start).Seconds()
	for _, s := range servers {
		if err := s.restart(); err != nil {
			return run, err
		}
	}
	events.add("both DNS servers restarted")
	say("both DNS servers restarted, as pods are under pressure")

	// The run keeps its length, and at least half a minute after the restart to show its effect.
	if !sleep(ctx, max(opts.Duration-time.Since(rec.start), 30*time.Second)) {
		return run, ctx.Err()
	}
	if rollout != nil {
		run.Rollout = rollout.wait(2 * time.Minute)
		if run.RolloutReport, err = readRolloutReport(filepath.Join(dir, "rollout.json")); err != nil {
			return run, err
		}
	}
	stopRun()
	<-recorded
	run.Samples = samples
	run.Events = events.list()
	run.Summary = Summarize(samples, run.DNSRestartAt, opts.Interval.Seconds())
	say("done; stopping the lab")
	return run, nil
}

// apiServerRestarts is how often the lab restarted its apiserver so far; looping says it has.
func apiServerRestarts(ctx context.Context, lab *labtest.Lab) (int, bool) {
	st, err := lab.Status(ctx)
	if err != nil {
		return 0, false
	}
	n := st.ComponentRestarts["kube-apiserver"]
	return n, n > 0
}

// awaitNextDeath returns once the lab restarts its apiserver again — the start of a fresh
// outage, the apiserver's start-up still ahead — or after limit. Returning while it is down
// already would be no test: it may come back a second later and feed a restarted DNS pod.
func awaitNextDeath(ctx context.Context, lab *labtest.Lab, restarts int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if n, _ := apiServerRestarts(ctx, lab); n > restarts {
			return
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return
		}
	}
}

// setupIdentities creates the agent's, the probe's and the DNS servers' service accounts and
// writes token kubeconfigs for the DNS servers, which authenticate as they would in a cluster.
func setupIdentities(ctx context.Context, lab *labtest.Lab, dir string) (map[string]string, error) {
	c := lab.Client
	for _, ns := range []string{agentNamespace, probeNamespace} {
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("namespace %s: %w", ns, err)
		}
	}
	accounts := []struct {
		namespace, name string
		rules           []rbacv1.PolicyRule
	}{
		{agentNamespace, agentName, []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list", "watch"}}}},
		{probeNamespace, "probe", []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}}},
		{"kube-system", "coredns", dnsRules()},
		{"kube-system", "bulkhead-dns", dnsRules()},
	}
	for _, a := range accounts {
		if _, err := c.CoreV1().ServiceAccounts(a.namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: a.name}}, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("service account %s/%s: %w", a.namespace, a.name, err)
		}
		name := "demo:" + a.namespace + ":" + a.name
		if _, err := c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: a.rules}, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("role %s: %w", name, err)
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: a.namespace, Name: a.name}},
		}
		if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("binding %s: %w", name, err)
		}
	}
	if _, err := c.CoreV1().ConfigMaps(probeNamespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe-target"}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("probe target: %w", err)
	}
	kubeconfigs := map[string]string{}
	for server, sa := range map[string]string{CoreDNS: "coredns", BulkheadDNS: "bulkhead-dns"} {
		path, err := tokenKubeconfig(ctx, lab, dir, "kube-system", sa)
		if err != nil {
			return nil, err
		}
		kubeconfigs[server] = path
	}
	return kubeconfigs, nil
}

func dnsRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"services", "namespaces", "endpoints"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
	}
}

// tokenKubeconfig mints a day-long token for a service account and writes a kubeconfig for it.
func tokenKubeconfig(ctx context.Context, lab *labtest.Lab, dir, namespace, sa string) (string, error) {
	expiry := int64(24 * 3600)
	tr, err := lab.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for %s/%s: %w", namespace, sa, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["lab"] = &clientcmdapi.Cluster{Server: lab.Config.Host, CertificateAuthorityData: lab.Config.CAData}
	if len(lab.Config.CAData) == 0 {
		cfg.Clusters["lab"].CertificateAuthority = lab.Config.CAFile
	}
	cfg.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: sa}
	cfg.CurrentContext = "lab"
	path := filepath.Join(dir, sa+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("kubeconfig for %s: %w", sa, err)
	}
	return path, nil
}

// startDNS starts both DNS servers and one probe per server over the lab's Service names.
func startDNS(opts Options, dir string, kubeconfigs map[string]string) ([]*process, map[string]*dnsProbe, error) {
	var names []string
	for i := 0; i < opts.Services; i++ {
		names = append(names, fmt.Sprintf("svc-%03d.lab.svc.cluster.local.", i))
	}
	coreAddr, err := freeAddr()
	if err != nil {
		return nil, nil, err
	}
	bulkAddr, err := freeAddr()
	if err != nil {
		return nil, nil, err
	}
	core, err := coreDNSProcess(opts.CoreDNSBinary, dir, coreAddr, kubeconfigs[CoreDNS])
	if err != nil {
		return nil, nil, err
	}
	bulk := bulkheadDNSProcess(opts.BulkheadBinary, dir, bulkAddr, kubeconfigs[BulkheadDNS])
	servers := []*process{core, bulk}
	for _, s := range servers {
		if err := s.start(); err != nil {
			return servers, nil, err
		}
	}
	for addr, s := range map[string]*process{coreAddr: core, bulkAddr: bulk} {
		if err := waitAnswers(addr, names[0], time.Minute); err != nil {
			return servers, nil, fmt.Errorf("%s: %w (see %s)", s.name, err, s.log)
		}
	}
	probes := map[string]*dnsProbe{
		CoreDNS:     {addr: coreAddr, names: names},
		BulkheadDNS: {addr: bulkAddr, names: names},
	}
	return servers, probes, nil
}

// telemetryDaemonSet is the seed's agent: every pod LISTs every pod in the cluster.
func telemetryDaemonSet(every time.Duration) *appsv1.DaemonSet {
	labels := map[string]string{"app": agentName}
	return &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: metav1.ObjectMeta{Name: agentName, Namespace: agentNamespace},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
					"lab.bulkhead.dev/behavior": fmt.Sprintf("- list: pods\n  every: %s\n", every),
				}},
				Spec: corev1.PodSpec{
					ServiceAccountName: agentName,
					Containers:         []corev1.Container{{Name: "agent", Image: "example.invalid/telemetry:2024.12.11"}},
				},
			},
		},
	}
}

func writeManifest(path string, ds *appsv1.DaemonSet) error {
	data, err := yaml.Marshal(ds)
	if err != nil {
		return fmt.Errorf("render DaemonSet: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func runBulkhead(ctx context.Context, binary, kubeconfig string, args ...string) error {
	out, err := exec.CommandContext(ctx, binary, append(args, "--kubeconfig", kubeconfig)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("bulkhead %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// rolloutProcess is a running `bulkhead rollout apply`, whose output lines are kept.
type rolloutProcess struct {
	cmd   *exec.Cmd
	done  chan struct{}
	mu    sync.Mutex
	lines []string
}

func startRollout(opts Options, kubeconfig, manifest, reportPath string, onLine func(string)) (*rolloutProcess, error) {
	cmd := exec.Command(opts.BulkheadBinary, "rollout", "apply", "-f", manifest, "--kubeconfig", kubeconfig,
		"--waves", opts.Waves, "--soak", opts.Soak, "--report", reportPath)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bulkhead rollout: %w", err)
	}
	r := &rolloutProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		scanner := bufio.NewScanner(out)
		for scanner.Scan() {
			line := strings.TrimSpace(scanner.Text())
			if line == "" {
				continue
			}
			r.mu.Lock()
			r.lines = append(r.lines, line)
			r.mu.Unlock()
			onLine(line)
		}
		_ = cmd.Wait()
		close(r.done)
	}()
	return r, nil
}

// wait gives the rollout up to timeout to finish, then interrupts it (a safe pause).
func (r *rolloutProcess) wait(timeout time.Duration) []string {
	select {
	case <-r.done:
	case <-time.After(timeout):
		_ = r.cmd.Process.Signal(os.Interrupt)
		<-r.done
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// readRolloutReport reads the JSON report `bulkhead rollout apply --report` wrote.
func readRolloutReport(path string) (*report.Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("the rollout's report: %w", err)
	}
	var r report.Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("the rollout's report %s: %w", path, err)
	}
	return &r, nil
}

type eventLog struct {
	start  time.Time
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, Event{At: time.Since(l.start).Seconds(), Text: text})
}

func (l *eventLog) list() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

func liveView(ctx context.Context, samples <-chan Sample, say func(string, ...any)) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-samples:
			say("%4.0fs  agents on %3d nodes · probe GET %s%s · rejected %.0f/s · apiserver restarts %d · %s %s · %s %s",
				s.At, s.AgentNodes, probeText(s), sloMark(s), s.Rejected, s.APIServerRestarts,
				CoreDNS, percent(s.DNS[CoreDNS]), BulkheadDNS, percent(s.DNS[BulkheadDNS]))
		}
	}
}

// probeText is the probe's p99, or that nothing got through: a p99 of the few requests that were
// refused at once (the apiserver is down) would read as a fast server.
func probeText(s Sample) string {
	if s.ProbeOK == 0 && s.ProbeFailed > 0 {
		return "all failing"
	}
	return "p99 " + seconds(float64(s.ProbeP99))
}

func sloMark(s Sample) string {
	if s.Broken() {
		return fmt.Sprintf(" (SLO BROKEN: %d failed, %d waiting > 1s)", s.ProbeFailed, s.ProbeStuck)
	}
	return ""
}

func percent(c DNSCount) string {
	if c.OK+c.Failed == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(c.OK)/float64(c.OK+c.Failed))
}

func seconds(s float64) string {
	switch {
	case s != s: // NaN
		return "-"
	case s < 1:
		return fmt.Sprintf("%.0fms", s*1000)
	default:
		return fmt.Sprintf("%.2fs", s)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
