// Package e2e drives `bulkhead rollout` as a user does, against the lab.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/internal/cli"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
	"github.com/bulkhead-dev/bulkhead/rollout"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/report"
	"github.com/bulkhead-dev/bulkhead/rollout/soak"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

var lab *labtest.Lab

const nodes = 12

func TestMain(m *testing.M) {
	os.Exit(labtest.Run(m, labtest.Options{Nodes: nodes, PodsPerNode: 10, Services: 4}, &lab))
}

const manifest = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: NAME
  namespace: NS
spec:
  selector:
    matchLabels: {app: NAME}
  template:
    metadata:
      labels: {app: NAME}
      annotations:
        lab.bulkhead.dev/behavior: |
          - watch: pods
            fieldSelector: spec.nodeName=$(NODE_NAME)
    spec:
      serviceAccountName: NAME
      containers:
      - name: agent
        image: IMAGE
`

func writeManifest(t *testing.T, ns, name, image string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".yaml")
	text := strings.NewReplacer("NAME", name, "NS", ns, "IMAGE", image).Replace(manifest)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatalf("write manifest: %v", err)
	}
	return path
}

func setup(t *testing.T, ctx context.Context, ns, sa string) {
	t.Helper()
	if err := lab.ServiceAccount(ctx, ns, sa, "view"); err != nil {
		t.Fatal(err)
	}
}

// bulkhead runs the command line in-process and returns its output.
func bulkhead(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	root := cli.NewRootCommand(&out, &out)
	root.SetArgs(append([]string{"--kubeconfig", lab.Kubeconfig}, args...))
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// snapshot is what bad input must leave alone: DaemonSets, bulkhead's APF objects, node labels.
func snapshot(t *testing.T, ctx context.Context) string {
	t.Helper()
	var b strings.Builder
	dss, err := lab.Client.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list DaemonSets: %v", err)
	}
	for _, d := range dss.Items {
		// Generation and annotations, not resourceVersion: the controller's status updates
		// are not changes bulkhead made.
		fmt.Fprintf(&b, "%s/%s gen %d %v ", d.Namespace, d.Name, d.Generation, d.Annotations)
	}
	fss, err := lab.Client.FlowcontrolV1().FlowSchemas().List(ctx, metav1.ListOptions{LabelSelector: apf.ManagedSelector("")})
	if err != nil {
		t.Fatalf("list flow schemas: %v", err)
	}
	for _, f := range fss.Items {
		b.WriteString(f.Name + " ")
	}
	nodeList, err := lab.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	for _, n := range nodeList.Items {
		for k := range n.Labels {
			if strings.HasPrefix(k, "rollout.bulkhead.dev/") {
				b.WriteString(n.Name + ":" + k + " ")
			}
		}
	}
	return b.String()
}

func TestApplyThenUpdateThroughTheCommandLine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const ns, name = "cli", "agent"
	setup(t, ctx, ns, name)
	out, err := bulkhead(ctx, "rollout", "apply", "-f", writeManifest(t, ns, name, "agent:v1"),
		"--waves", "25%,100%", "--soak", "8s", "--interval", "2s")
	t.Log(out)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	for _, want := range []string{"(create): 12 eligible nodes, waves [3 12]; lane bulkhead-rollout-cli.agent holds 60 of 598 seats per API server (1 replicas)",
		"budget: cpu: 0.500 cores (25% of the API servers' 2.0 cores, from GOMAXPROCS)", "baseline: the API servers use", "wave 1: 3 agents", "— proceeding",
		"  cpu    measured", "  seats  measured", "cli/agent: Complete"} {
		if !strings.Contains(out, want) {
			t.Fatalf("apply output lacks %q", want)
		}
	}

	reportFile := filepath.Join(t.TempDir(), "rollout.html")
	out, err = bulkhead(ctx, "rollout", "apply", "-f", writeManifest(t, ns, name, "agent:v2"),
		"--waves", "25%,100%", "--soak", "8s", "--interval", "2s", "--report", reportFile)
	t.Log(out)
	if err != nil {
		t.Fatalf("apply of an update: %v", err)
	}
	for _, want := range []string{"(update)", "baseline: 12 agents use", "wave 1: 3 agents (new version)", "cli/agent: Complete",
		"report: " + reportFile + ", " + strings.TrimSuffix(reportFile, ".html") + ".json"} {
		if !strings.Contains(out, want) {
			t.Fatalf("update output lacks %q", want)
		}
	}
	r := readReport(t, strings.TrimSuffix(reportFile, ".html")+".json")
	if r.Phase != "Complete" || r.Kind != "update" || len(r.Steps) != 3 || r.Steps[0].Label != "baseline" || r.Steps[2].Nodes != nodes ||
		r.Steps[2].Resources["cpu"].Predicted == nil || len(r.Budgets) != 3 {
		t.Fatalf("report: %+v", r)
	}
	if cpu, seats := r.Budgets[0], r.Budgets[2]; !cpu.Gated || cpu.Resource != "cpu" || cpu.Capacity <= 0 || seats.Capacity != 598 || seats.Share != 10 {
		t.Fatalf("budgets: %+v, want CPU gated on the server's GOMAXPROCS and 10%% of its 598 seats", r.Budgets)
	}
	if page := string(must(os.ReadFile(reportFile))); !strings.Contains(page, "<svg") || !strings.Contains(page, html.EscapeString(r.Steps[1].Headline)) {
		t.Fatalf("the HTML report lacks the chart or wave 1's decision")
	}
	ds, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if ds.Status.UpdatedNumberScheduled != nodes || ds.Spec.Template.Spec.Containers[0].Image != "agent:v2" || ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Fatalf("after the update: %d updated, image %s, strategy %s", ds.Status.UpdatedNumberScheduled, ds.Spec.Template.Spec.Containers[0].Image, ds.Spec.UpdateStrategy.Type)
	}
	status, err := bulkhead(ctx, "rollout", "status", name, "-n", ns)
	if err != nil || !strings.Contains(status, "phase:   Complete") || !strings.Contains(status, "baseline:") {
		t.Fatalf("status: %v\n%s", err, status)
	}
	events, err := lab.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=DaemonSet,involvedObject.name=" + name})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	reasons := map[string]string{}
	for _, e := range events.Items {
		if e.Source.Component == "bulkhead-rollout" {
			reasons[e.Reason] = e.Message
		}
	}
	for _, want := range []string{"WaveStarted", "WaveProceed", "RolloutComplete"} {
		if _, ok := reasons[want]; !ok {
			t.Fatalf("no %s event on the DaemonSet; bulkhead's events: %v", want, reasons)
		}
	}
}

// A rollout whose process dies mid-soak leaves only its annotation; resume finishes it.
func TestAKilledRolloutResumesFromItsAnnotation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const ns, name = "resume", "agent"
	setup(t, ctx, ns, name)
	ds, err := execute.ParseManifest([]byte(strings.NewReplacer("NAME", name, "NS", ns, "IMAGE", "agent:v1").Replace(manifest)), ns, true)
	if err != nil {
		t.Fatalf("ParseManifest: %v", err)
	}
	scraper, err := controlplane.NewScraper(lab.Config, controlplane.Options{})
	if err != nil {
		t.Fatalf("NewScraper: %v", err)
	}
	opts := rollout.Options{Waves: "25%,100%", Soak: 8 * time.Second}
	// The first process dies in wave 1's soak: its context ends, nothing is paused or saved.
	dying, die := context.WithCancel(ctx)
	engine := &rollout.Engine{Client: lab.Client, Meter: &soak.Meter{Scraper: scraper, Interval: 2 * time.Second},
		Log: func(_, _, l string) { t.Log("first: " + l) }}
	go engine.Meter.Run(dying)
	defer engine.Close()
	go func() {
		for dying.Err() == nil {
			if _, st, err := execute.Load(ctx, lab.Client, ns, name); err == nil && st.Phase == state.Soaking {
				die()
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	if _, err := rollout.Apply(dying, engine, ds, opts); err == nil {
		t.Fatalf("the first process should have died mid-soak")
	}
	_, st, err := execute.Load(ctx, lab.Client, ns, name)
	if err != nil || st.Phase != state.Soaking || st.Wave != 1 || st.Done != 3 {
		t.Fatalf("after the death: %v, phase %s wave %d done %d; want soaking wave 1 with 3 nodes", err, st.Phase, st.Wave, st.Done)
	}
	before := snapshot(t, ctx)
	if _, err := bulkhead(ctx, "rollout", "apply", "-f", writeManifest(t, ns, name, "agent:v1")); err == nil || !strings.Contains(err.Error(), "already under rollout") {
		t.Fatalf("a second apply during the rollout: %v", err)
	}
	if after := snapshot(t, ctx); after != before {
		t.Fatalf("the refused apply changed the cluster:\n%s\n%s", before, after)
	}

	reportFile := filepath.Join(t.TempDir(), "resumed.json")
	out, err := bulkhead(ctx, "rollout", "resume", name, "-n", ns, "--interval", "2s", "--report", reportFile)
	t.Log(out)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	// The resumed process reports the whole rollout, from the annotation.
	if r := readReport(t, reportFile); r.Phase != "Complete" || len(r.Steps) != 3 || r.Steps[1].Nodes != 3 || r.Steps[2].Nodes != nodes {
		t.Fatalf("report after resume: %+v", r)
	}
	if !strings.Contains(out, "wave 1: 3 agents use") || !strings.Contains(out, "resume/agent: Complete") {
		t.Fatalf("resume output:\n%s", out)
	}
	live, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil || live.Status.UpdatedNumberScheduled != nodes {
		t.Fatalf("after resume: %v, %d of %d pods up to date", err, live.Status.UpdatedNumberScheduled, nodes)
	}
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns = "bad"
	setup(t, ctx, ns, "agent")
	good := writeManifest(t, ns, "agent", "agent:v1")
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatalf("write: %v", err)
		}
		return p
	}
	deployment := write("deploy.yaml", strings.Replace(string(must(os.ReadFile(good))), "kind: DaemonSet", "kind: Deployment", 1))
	malformed := write("bad.yaml", "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: [\n")
	defaultSA := write("default-sa.yaml", strings.Replace(string(must(os.ReadFile(good))), "      serviceAccountName: agent\n", "", 1))
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"not a DaemonSet", []string{"rollout", "apply", "-f", deployment}, "no apps/v1 DaemonSet among its 1 objects (Deployment agent)"},
		{"malformed YAML", []string{"rollout", "apply", "-f", malformed}, "manifest"},
		{"waves not increasing", []string{"rollout", "apply", "-f", good, "--waves", "5%,1%,100%"}, `item 2 ("1%"): waves must strictly increase`},
		{"waves not ending at 100%", []string{"rollout", "apply", "-f", good, "--waves", "1%,50%"}, "must end with 100%"},
		{"budget zero", []string{"rollout", "apply", "-f", good, "--budget", "0%"}, "must be within (0, 100%]"},
		{"budget over 100%", []string{"rollout", "apply", "-f", good, "--budget", "150%"}, "must be within (0, 100%]"},
		{"budget of an unknown resource", []string{"rollout", "apply", "-f", good, "--budget", "cpu=20%,disk=5%"}, `unknown resource "disk"`},
		{"memory that is not a quantity", []string{"rollout", "apply", "-f", good, "--apiserver-memory", "lots"}, `--apiserver-memory "lots": want a positive quantity`},
		{"negative CPUs", []string{"rollout", "apply", "-f", good, "--apiserver-cpus", "-1"}, "--apiserver-cpus -1 must not be negative"},
		{"no manifest", []string{"rollout", "apply"}, "-f: the manifest is required"},
		{"report in a missing directory", []string{"rollout", "apply", "-f", good, "--report", filepath.Join(dir, "nope", "r.html")}, "does not exist"},
		{"the default service account", []string{"rollout", "apply", "-f", defaultSA}, "default service account"},
		{"status of an unknown DaemonSet", []string{"rollout", "status", "nope", "-n", ns}, `daemonsets.apps "nope" not found`},
		{"resume of an unknown DaemonSet", []string{"rollout", "pause", "nope", "-n", ns}, `not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, ctx)
			_, err := bulkhead(ctx, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if after := snapshot(t, ctx); after != before {
				t.Fatalf("refused input changed the cluster:\n%s\n%s", before, after)
			}
		})
	}
}

func readReport(t *testing.T, path string) report.Report {
	t.Helper()
	var r report.Report
	if err := json.Unmarshal(must(os.ReadFile(path)), &r); err != nil {
		t.Fatalf("report %s: %v", path, err)
	}
	return r
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// waitPhase waits until the rollout of ns/name is in phase (or fails the test).
func waitPhase(t *testing.T, ctx context.Context, ns, name string, phase state.Phase) {
	t.Helper()
	for ctx.Err() == nil {
		if _, st, err := execute.Load(ctx, lab.Client, ns, name); err == nil && st.Phase == phase {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("rollout of %s/%s never reached %s", ns, name, phase)
}

// Pause and abort from another command interrupt a running soak at once, not at its end.
func TestPauseAndAbortInterruptARunningSoak(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const ns, name = "interrupt", "agent"
	setup(t, ctx, ns, name)
	file := writeManifest(t, ns, name, "agent:v1")
	long := []string{"rollout", "apply", "-f", file, "--waves", "25%,100%", "--soak", "5m", "--interval", "2s"}

	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() { out, err := bulkhead(ctx, long...); done <- result{out, err} }()
	waitPhase(t, ctx, ns, name, state.Soaking)
	started := time.Now()
	if out, err := bulkhead(ctx, "rollout", "pause", name, "-n", ns); err != nil || !strings.Contains(out, "phase:   Soaking, paused") {
		t.Fatalf("pause: %v\n%s", err, out)
	}
	r := <-done
	if r.err != nil || time.Since(started) > 20*time.Second {
		t.Fatalf("apply after pause: %v after %v\n%s", r.err, time.Since(started), r.out)
	}
	if !strings.Contains(r.out, "interrupt/agent: Soaking") {
		t.Fatalf("apply should stop at the paused soak:\n%s", r.out)
	}
	status, err := bulkhead(ctx, "rollout", "status", name, "-n", ns)
	if err != nil || !strings.Contains(status, "next:    paused") {
		t.Fatalf("status: %v\n%s", err, status)
	}

	go func() {
		out, err := bulkhead(ctx, "rollout", "resume", name, "-n", ns, "--interval", "2s")
		done <- result{out, err}
	}()
	// The resume has taken: the state is no longer paused and its soak restarted.
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, st, err := execute.Load(ctx, lab.Client, ns, name)
		return err == nil && !st.Paused && st.Phase == state.Soaking, nil
	}); err != nil {
		t.Fatalf("the resume did not take: %v", err)
	}
	started = time.Now()
	if out, err := bulkhead(ctx, "rollout", "abort", name, "-n", ns); err != nil || !strings.Contains(out, "phase:   RollingBack") {
		t.Fatalf("abort: %v\n%s", err, out)
	}
	r = <-done
	if r.err == nil || !strings.Contains(r.err.Error(), "rolled back: aborted by user") || time.Since(started) > time.Minute {
		t.Fatalf("resume after abort: %v after %v\n%s", r.err, time.Since(started), r.out)
	}
	if _, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the aborted new DaemonSet still exists: %v", err)
	}
	if lanes := snapshot(t, ctx); strings.Contains(lanes, "bulkhead-rollout-interrupt") || strings.Contains(lanes, "interrupt/agent") {
		t.Fatalf("leftovers after abort: %s", lanes)
	}
}
