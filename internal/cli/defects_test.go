package cli_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/bulkhead-dev/bulkhead/internal/cli"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
)

// A script must see a typo: `bulkhead rollout abrot` fails, as kubectl does, and names the
// command it did not know.
func TestUnknownSubcommandsFailLikeKubectl(t *testing.T) {
	for _, args := range [][]string{{"rollout", "abrot"}, {"breakglass", "kubecfg"}, {"completion", "bsh"}, {"shed", "lst"}, {"nosuch"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, _, err := execute(t, 10*time.Second, args...)
			if err == nil || !strings.Contains(err.Error(), `unknown command "`+args[len(args)-1]+`"`) {
				t.Fatalf("error = %v, want unknown command %q", err, args[len(args)-1])
			}
		})
	}
	// A parent command alone still shows its help and succeeds.
	if out, _, err := execute(t, 10*time.Second, "rollout"); err != nil || !strings.Contains(out, "apply") {
		t.Fatalf("bulkhead rollout: %v\n%s", err, out)
	}
}

// Without any kubeconfig and outside a pod, a command says so and where it looked, instead of
// dialling localhost:8080.
func TestWithoutAKubeconfigCommandsSayWhereTheyLooked(t *testing.T) {
	// KUBECONFIG names a file that does not exist (client-go fixed ~/.kube/config at start-up,
	// so a missing file on the path stands in for a machine without one).
	missing := filepath.Join(t.TempDir(), "config")
	t.Setenv("KUBECONFIG", missing)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	for _, args := range [][]string{{"shed", "list"}, {"top", "--once"}, {"rollout", "status", "agent"}, {"install"},
		{"install", "--controller"}, {"controller", "--metrics-bind-address", "127.0.0.1:0", "--health-bind-address", "127.0.0.1:0"},
		{"rollout", "apply", "-f", "-", "--budget", "cpu=20%"},
		{"breakglass", "kubeconfig"}, {"dns", "--listen", "127.0.0.1:0", "--metrics", "", "--snapshot", filepath.Join(t.TempDir(), "s")}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, stderr, err := execute(t, 20*time.Second, args...)
			if err == nil || !strings.Contains(err.Error(), "no kubeconfig found") || !strings.Contains(err.Error(), missing) ||
				!strings.Contains(err.Error(), "in-cluster") {
				t.Fatalf("error = %v, want one saying no kubeconfig was found and where bulkhead looked", err)
			}
			if strings.Contains(err.Error()+stderr, "localhost:8080") {
				t.Fatalf("dialled localhost:8080: %v\n%s", err, stderr)
			}
		})
	}
}

// While the API server refuses connections, top says why the replicas were not discovered.
func TestTopNamesWhyTheAPIServerCouldNotBeReached(t *testing.T) {
	_, stderr, _ := execute(t, 30*time.Second, "--kubeconfig", refusingServer(t), "top", "--once", "--timeout", "2s", "--interval", "100ms")
	if strings.Contains(stderr, "<nil>") || !strings.Contains(stderr, "connection refused") {
		t.Fatalf("top did not name the cause:\n%s", stderr)
	}
}

// bulkhead dns refuses a snapshot path it cannot write, at start-up, instead of becoming ready.
func TestDNSRefusesASnapshotDirectoryItCannotWrite(t *testing.T) {
	_, _, err := execute(t, 5*time.Second, "--kubeconfig", refusingServer(t), "dns", "--listen", "127.0.0.1:0", "--metrics", "",
		"--snapshot", filepath.Join(unwritableDir, "dns.snapshot"))
	if err == nil || !strings.Contains(err.Error(), "--snapshot") || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("error = %v, want --snapshot ... not writable", err)
	}
}

// --report in a directory that cannot be written is refused before the cluster is contacted.
func TestReportInAnUnwritableDirectoryIsRefusedFirst(t *testing.T) {
	kubeconfig, connections := countingServer(t)
	_, _, err := execute(t, 10*time.Second, "--kubeconfig", kubeconfig, "rollout", "status", "agent", "--report", filepath.Join(unwritableDir, "r.html"))
	if err == nil || !strings.Contains(err.Error(), "--report") || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("error = %v, want --report ... not writable", err)
	}
	if n := connections(); n != 0 {
		t.Fatalf("%d connections to the API server before refusing the report path", n)
	}
}

// version prints the client's version, commit and Go version, as text, JSON or YAML; without a
// server it says why the server's version is missing, and still succeeds.
func TestVersionPrintsTextJSONAndYAML(t *testing.T) {
	kubeconfig := refusingServer(t)
	text, _, err := execute(t, 10*time.Second, "--kubeconfig", kubeconfig, "version")
	if err != nil || !strings.Contains(text, "bulkhead") || !strings.Contains(text, "commit") || !strings.Contains(text, "server") {
		t.Fatalf("version: %v\n%s", err, text)
	}
	for _, format := range []string{"json", "yaml"} {
		out, _, err := execute(t, 10*time.Second, "--kubeconfig", kubeconfig, "version", "-o", format)
		if err != nil {
			t.Fatalf("version -o %s: %v", format, err)
		}
		var v struct {
			ClientVersion struct {
				Version   string `json:"version"`
				GoVersion string `json:"goVersion"`
				Platform  string `json:"platform"`
			} `json:"clientVersion"`
			ServerError string `json:"serverError"`
		}
		if format == "json" {
			err = json.Unmarshal([]byte(out), &v)
		} else {
			err = yaml.Unmarshal([]byte(out), &v)
		}
		if err != nil || v.ClientVersion.Version == "" || !strings.HasPrefix(v.ClientVersion.GoVersion, "go") || v.ClientVersion.Platform == "" ||
			!strings.Contains(v.ServerError, "connection refused") {
			t.Fatalf("version -o %s: %v\n%s", format, err, out)
		}
	}
	if _, _, err := execute(t, 10*time.Second, "version", "-o", "xml"); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Fatalf("version -o xml: %v", err)
	}
}

// Every command shows examples, and its help does not send a plugin user to repository files
// they do not have.
func TestEveryCommandHasExamplesAndNoRepositoryPaths(t *testing.T) {
	root := cli.NewRootCommand(os.Stdout, os.Stderr)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "__complete" || c.Name() == "__completeNoDesc" {
			return
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s has no examples", c.CommandPath())
		}
		for _, text := range []string{c.Short, c.Long, c.Example} {
			if strings.Contains(text, "README.md") {
				t.Errorf("%s help points to a repository README: %q", c.CommandPath(), text)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root.InitDefaultCompletionCmd()
	walk(root)
}

// Run as kubectl bulkhead (the binary installed as kubectl-bulkhead), usage and examples say
// kubectl bulkhead.
func TestAsAKubectlPluginHelpSaysKubectlBulkhead(t *testing.T) {
	bin := labtest.Bulkhead(t)
	plugin := filepath.Join(filepath.Dir(bin), "kubectl-bulkhead")
	if err := os.Symlink(bin, plugin); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(plugin, "rollout", "apply", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl-bulkhead rollout apply --help: %v\n%s", err, out)
	}
	help := string(out)
	if !strings.Contains(help, "kubectl bulkhead rollout apply -f") {
		t.Fatalf("examples do not say kubectl bulkhead:\n%s", help)
	}
	for _, line := range strings.Split(help, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "bulkhead ") {
			t.Errorf("a help line still says bulkhead without kubectl: %q", line)
		}
	}
}

// Negative or zero durations and counts are refused with the flag's name.
func TestNegativeIntervalsDelaysAndRowsAreRefused(t *testing.T) {
	kubeconfig, connections := countingServer(t)
	manifest := writeFile(t, "ds.yaml", daemonSet("agent"))
	for _, tt := range []struct {
		args []string
		flag string
	}{
		{[]string{"rollout", "apply", "-f", manifest, "--interval", "-1s"}, "--interval"},
		{[]string{"rollout", "apply", "-f", manifest, "--interval", "0s"}, "--interval"},
		{[]string{"rollout", "resume", "agent", "--interval", "-5s"}, "--interval"},
		{[]string{"dns", "--listen", "127.0.0.1:0", "--metrics", "", "--snapshot", filepath.Join(t.TempDir(), "s"), "--snapshot-delay", "-1s"}, "--snapshot-delay"},
		{[]string{"top", "--once", "--rows", "-1"}, "--rows"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := execute(t, 5*time.Second, append([]string{"--kubeconfig", kubeconfig}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.flag) {
				t.Fatalf("error = %v, want one naming %s", err, tt.flag)
			}
		})
	}
	if n := connections(); n != 0 {
		t.Fatalf("%d connections to the API server for flags that are wrong", n)
	}
}

// -n is honoured where it means something (shed --serviceaccount NAME) and refused where it
// means nothing (sheds of users and groups, shed list, unshed, install, top).
func TestNamespaceFlagIsHonouredOrRefused(t *testing.T) {
	kubeconfig, connections := countingServer(t)
	_, _, err := execute(t, 5*time.Second, "--kubeconfig", kubeconfig, "-n", "kube-system", "shed", "--serviceaccount", "coredns")
	if err == nil || !strings.Contains(err.Error(), "kube-system service accounts") {
		t.Fatalf("shed --serviceaccount coredns -n kube-system: %v; want the kube-system guard rail", err)
	}
	for _, args := range [][]string{{"shed", "--user", "alice"}, {"shed", "list"}, {"unshed", "x"}, {"install"}, {"top", "--once"},
		{"breakglass", "kubeconfig"}, {"install", "--controller"}, {"controller"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, _, err := execute(t, 5*time.Second, append([]string{"--kubeconfig", kubeconfig, "-n", "default"}, args...)...)
			if err == nil || !strings.Contains(err.Error(), "-n") {
				t.Fatalf("error = %v, want -n refused", err)
			}
		})
	}
	if _, _, err := execute(t, 5*time.Second, "--kubeconfig", kubeconfig, "-n", "other", "shed", "--serviceaccount", "victim/agent"); err == nil ||
		!strings.Contains(err.Error(), "victim") || !strings.Contains(err.Error(), "other") {
		t.Fatalf("a namespace in both --serviceaccount and -n that differ: %v", err)
	}
	if n := connections(); n != 0 {
		t.Fatalf("%d connections to the API server for input that is wrong", n)
	}
}

// top's live view clears the screen only on a terminal: piped, it prints plain text.
func TestTopDrawsNoScreenControlWhenNotATerminal(t *testing.T) {
	out, _, _ := execute(t, 3*time.Second, "--kubeconfig", refusingServer(t), "top", "--interval", "200ms", "--timeout", "500ms", "--no-discovery")
	if strings.Contains(out, "\x1b[") {
		t.Fatalf("top wrote ANSI escapes to a pipe: %q", out)
	}
	if !strings.Contains(out, "FLOW SCHEMA") {
		t.Fatalf("top printed no view: %q", out)
	}
}

// The expired-shed check warns once, in one short line, when it cannot run.
func TestTheExpiredShedWarningIsOneShortLine(t *testing.T) {
	_, stderr, _ := execute(t, 20*time.Second, "--kubeconfig", refusingServer(t), "rollout", "status", "agent")
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "expired sheds not checked") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || len(lines[0]) > 120 || strings.Contains(lines[0], "http") {
		t.Fatalf("want one short warning line without URLs, got %d:\n%s", len(lines), strings.Join(lines, "\n"))
	}
}

// Checks that need no cluster run before bulkhead contacts it: the shed guard rails (--force
// lifts none of the hard ones) and rollout apply's own-service-account check.
func TestBadInputFailsBeforeContactingTheCluster(t *testing.T) {
	kubeconfig, connections := countingServer(t)
	defaultSA := writeFile(t, "ds.yaml", strings.Replace(daemonSet("agent"), "      serviceAccountName: agent\n", "", 1))
	agent := writeFile(t, "agent.yaml", daemonSet("agent"))
	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"shed", "--group", "system:masters"}, "system:masters"},
		{[]string{"shed", "--group", "system:masters", "--force"}, "--force does not lift"},
		{[]string{"shed", "--group", "system:authenticated", "--force"}, "--force does not lift"},
		{[]string{"shed", "--group", "system:serviceaccounts", "--force"}, "--force does not lift"},
		{[]string{"shed", "--serviceaccount", "kube-system/kube-proxy", "--force"}, "--force does not lift"},
		{[]string{"shed", "--user", "system:kube-scheduler", "--force"}, "--force does not lift"},
		{[]string{"shed", "--serviceaccount", "bulkhead/bulkhead"}, "it is bulkhead itself"},
		{[]string{"rollout", "apply", "-f", defaultSA}, "default service account"},
		{[]string{"rollout", "apply", "-f", agent, "--metrics-source", "etcd"}, `--metrics-source "etcd": want one of auto, replicas, balanced, prometheus`},
		{[]string{"rollout", "apply", "-f", agent, "--metrics-source", "prometheus"}, "--metrics-source prometheus needs --prometheus URL"},
		{[]string{"rollout", "resume", "agent", "--prometheus", "127.0.0.1:9090"}, "--prometheus: prometheus URL"},
		{[]string{"controller", "--prometheus-token-file", "/t"}, "need --prometheus URL"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := execute(t, 10*time.Second, append([]string{"--kubeconfig", kubeconfig}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if n := connections(); n != 0 {
		t.Fatalf("%d connections to the API server for input refused offline", n)
	}
}

func daemonSet(name string) string {
	return strings.ReplaceAll(`apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: NAME
spec:
  selector:
    matchLabels: {app: NAME}
  template:
    metadata:
      labels: {app: NAME}
    spec:
      serviceAccountName: NAME
      containers:
      - name: agent
        image: example.invalid/agent:1
`, "NAME", name)
}
