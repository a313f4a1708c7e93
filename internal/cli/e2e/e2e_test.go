// Package e2e runs the bulkhead command as a new user meets it, against the lab's real API
// server: a whole agent manifest applied from stdin, output a script parses, the server's version,
// and bulkhead dns telling an API outage from its end.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/bulkhead-dev/bulkhead/internal/cli"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

var lab *labtest.Lab

func TestMain(m *testing.M) {
	os.Exit(labtest.Run(m, labtest.Options{Nodes: 4, PodsPerNode: 2, Services: 2}, &lab))
}

// bulkhead runs a command in-process as the lab's admin, with stdin.
func bulkhead(ctx context.Context, stdin io.Reader, out, errOut io.Writer, args ...string) error {
	root := cli.NewRootCommand(out, errOut)
	root.SetArgs(append([]string{"--kubeconfig", lab.Kubeconfig}, args...))
	if stdin != nil {
		root.SetIn(stdin)
	}
	return root.ExecuteContext(ctx)
}

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	err := bulkhead(ctx, nil, &out, &errOut, args...)
	return out.String(), errOut.String(), err
}

// agentManifest is what a chart renders for an agent: its namespace, service account, the RBAC
// its requests need, a ConfigMap and the DaemonSet, in one stream.
const agentManifest = `apiVersion: v1
kind: Namespace
metadata:
  name: NS
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: agent
  namespace: NS
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: NS-agent-view
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: agent, namespace: NS}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: CONFIGMAP
  namespace: NS
data: {interval: 10s}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: NS
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      serviceAccountName: agent
      containers:
      - name: agent
        image: agent:v1
`

func manifest(ns, configMap string) string {
	return strings.NewReplacer("NS", ns, "CONFIGMAP", configMap).Replace(agentManifest)
}

// `rollout apply -f -` takes the agent's whole manifest on stdin: every object is checked by the
// server, the others applied, and the DaemonSet gets the guarded rollout. status then prints the
// state for scripts, as JSON and YAML.
func TestRolloutApplyTakesAnAgentsWholeManifestFromStdin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns = "bundle"
	var out, errOut bytes.Buffer
	err := bulkhead(ctx, strings.NewReader(manifest(ns, "agent-config")), &out, &errOut,
		"rollout", "apply", "-f", "-", "--waves", "100%", "--soak", "10s", "--interval", "2s")
	t.Log(out.String() + errOut.String())
	if err != nil {
		t.Fatalf("rollout apply -f -: %v", err)
	}
	for _, want := range []string{"Namespace bundle applied", "ServiceAccount bundle/agent applied", "ClusterRoleBinding bundle-agent-view applied",
		"ConfigMap bundle/agent-config applied", "bundle/agent: Complete"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if _, err := lab.Client.CoreV1().ConfigMaps(ns).Get(ctx, "agent-config", metav1.GetOptions{}); err != nil {
		t.Fatalf("the ConfigMap was not applied: %v", err)
	}

	for _, format := range []string{"json", "yaml"} {
		text, _, err := run(t, "rollout", "status", "agent", "-n", ns, "-o", format)
		if err != nil {
			t.Fatalf("status -o %s: %v", format, err)
		}
		var st state.State
		if format == "json" {
			err = json.Unmarshal([]byte(text), &st)
		} else {
			err = yaml.Unmarshal([]byte(text), &st)
		}
		if err != nil || st.Phase != state.Complete || st.ID == "" || len(st.Targets) != 1 {
			t.Fatalf("status -o %s does not parse as the rollout's state: %v\n%s", format, err, text)
		}
	}
}

// A manifest with one object the API server refuses changes nothing: the dry run of every
// object comes before the first write.
func TestRolloutApplyChangesNothingWhenTheServerRefusesAnyObject(t *testing.T) {
	const ns = "refused"
	ctx := context.Background()
	if _, err := lab.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(manifest(ns, "Not_A_Valid_Name"), "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: refused\n---\n", "", 1)
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, "rollout", "apply", "-f", path, "--waves", "100%", "--soak", "10s")
	if err == nil || !strings.Contains(err.Error(), "ConfigMap refused/Not_A_Valid_Name is refused by the API server (dry run; nothing was changed)") {
		t.Fatalf("error = %v, want the ConfigMap's refusal", err)
	}
	if _, err := lab.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "agent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the service account was created before the manifest was checked: %v", err)
	}
	if _, err := lab.Client.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the DaemonSet was created: %v", err)
	}
}

// shed list -o json is the sheds with their jails' counters.
func TestShedListPrintsJSONAScriptParses(t *testing.T) {
	if _, _, err := run(t, "install"); err != nil {
		t.Fatal(err)
	}
	defer run(t, "uninstall")
	if err := lab.ServiceAccount(context.Background(), "victim", "agent", "view"); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := run(t, "shed", "--serviceaccount", "victim/agent", "--reason", "json"); err != nil {
		t.Fatalf("shed: %v\n%s", err, stderr)
	}
	text, _, err := run(t, "shed", "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Sheds []struct {
			Name, Mode, Reason string
			Expires            time.Time
			Rejected           *float64
		}
	}
	if err := json.Unmarshal([]byte(text), &list); err != nil || len(list.Sheds) != 1 {
		t.Fatalf("shed list -o json: %v\n%s", err, text)
	}
	s := list.Sheds[0]
	if s.Name != "bulkhead-shed-sa-victim.agent" || s.Mode != "reject" || s.Reason != "json" || s.Expires.IsZero() || s.Rejected == nil {
		t.Fatalf("shed = %+v", s)
	}
}

// version names the server it reaches.
func TestVersionNamesTheServer(t *testing.T) {
	text, _, err := run(t, "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		ServerVersion struct {
			GitVersion string `json:"gitVersion"`
		} `json:"serverVersion"`
	}
	if err := json.Unmarshal([]byte(text), &v); err != nil || v.ServerVersion.GitVersion != "v1.37.2" {
		t.Fatalf("version -o json: %v\n%s", err, text)
	}
	if human, _, _ := run(t, "version"); !strings.Contains(human, "server: Kubernetes v1.37.2") {
		t.Fatalf("version: %s", human)
	}
}

// bulkhead dns says once that the API server went away, with the cause, and once that it came
// back, with how long it was gone: client-go retries quietly in between. Last: it stops the
// API server for a while.
func TestDNSLogsAnAPIOutageOnceAndItsEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dnsCtx, stopDNS := context.WithCancel(ctx)
	var logs labtest.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- bulkhead(dnsCtx, nil, io.Discard, &logs, "dns", "--listen", "127.0.0.1:0", "--metrics", "",
			"--snapshot", filepath.Join(t.TempDir(), "dns.snapshot"))
	}()
	waitLog := func(want string, within time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(within); !strings.Contains(logs.String(), want); {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log within %s:\n%s", want, within, logs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitLog("connected to the API server", 30*time.Second)
	if err := lab.Ctl(ctx, "apiserver", "stop"); err != nil {
		t.Fatal(err)
	}
	started := false
	defer func() {
		if !started {
			_ = lab.Ctl(context.Background(), "apiserver", "start")
		}
	}()
	waitLog("level=WARN msg=\"API server", 30*time.Second)
	time.Sleep(15 * time.Second) // the watches retry all along
	if err := lab.Ctl(ctx, "apiserver", "start"); err != nil {
		t.Fatal(err)
	}
	started = true
	waitLog("API server reachable again", time.Minute)
	stopDNS()
	if err := <-done; err != nil {
		t.Fatalf("dns: %v", err)
	}
	var changes []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "API server") {
			changes = append(changes, line)
		}
	}
	t.Logf("connection changes logged:\n%s", strings.Join(changes, "\n"))
	// Connected, then the outage as its states changed (a server shutting down answers 503
	// and resets connections before it refuses them), then the recovery with its length: a
	// handful of lines for 15 s of retries, none repeated.
	if len(changes) < 3 || len(changes) > 5 || !strings.Contains(changes[len(changes)-1], "reachable again") || !strings.Contains(changes[len(changes)-1], "for=") {
		t.Fatalf("want connected, the outage's states, and one recovery line with its length; got %d lines", len(changes))
	}
	refused := false
	for i, line := range changes[1 : len(changes)-1] {
		refused = refused || strings.Contains(line, "connect: connection refused") && strings.Contains(line, "answering from the last view")
		if i > 0 && line[strings.Index(line, "level="):] == changes[i][strings.Index(changes[i], "level="):] {
			t.Fatalf("a state logged twice in a row: %s", line)
		}
	}
	if !refused {
		t.Fatal("no outage line names the refused connection")
	}
}
