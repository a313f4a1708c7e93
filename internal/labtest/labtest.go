// Package labtest starts bin/bulkhead-lab (a real etcd + kube-apiserver + controllers with fake
// nodes) for the product module's tests. Tests never fake the API server: a package that needs
// Kubernetes starts one lab in TestMain with Run and shares it between its tests. When the lab
// binary is missing or the lab does not come up, the package fails loudly; it is never skipped.
package labtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ReadyPrefix starts the line bulkhead-lab prints once every node is Ready and every filler pod
// is Running.
const ReadyPrefix = "bulkhead-lab: ready"

// Options size the lab. Zero values take the lab's own defaults.
type Options struct {
	Nodes       int
	PodsPerNode int
	Services    int
	// APIServers > 1 runs that many kube-apiserver replicas behind the lab's load balancer
	// (bulkhead-lab up --apiservers); the default/kubernetes EndpointSlice lists them.
	APIServers int
	// Endpoint "balancer" puts the replicas behind one load-balanced address, which the
	// default/kubernetes EndpointSlice lists alone (bulkhead-lab up --endpoint); empty or
	// "replicas" lists each replica.
	Endpoint string
	// GoAwayChance is every replica's --goaway-chance (0 to 0.02); 0 leaves it out.
	GoAwayChance float64
	// Prometheus is the path of a prometheus binary the lab runs and has scrape every replica
	// (bulkhead-lab up --prometheus); see Prometheus for where tests get it.
	Prometheus string
	// Background "busy" adds a production cluster's other clients once the lab is ready
	// (bulkhead-lab up --background); empty or "none" adds none.
	Background string
	// ExtraArgs are appended to `bulkhead-lab up`, for example --max-requests-inflight=50.
	ExtraArgs []string
	// StartTimeout bounds the wait for the ready line; default 4 minutes.
	StartTimeout time.Duration
}

// Lab is a running bulkhead-lab.
type Lab struct {
	Dir        string
	Kubeconfig string
	Config     *rest.Config
	Client     kubernetes.Interface
	// LogPath holds everything the lab printed.
	LogPath string

	binary string
	// replicas are the apiserver replicas when there are several; metrics are read from each.
	replicas []ReplicaStatus
	cmd      *exec.Cmd
	exited   chan struct{}
	ownsDir  bool
}

// Binary returns the path of bulkhead-lab: $BULKHEAD_LAB_BIN, or bin/bulkhead-lab at the root
// of the repository that contains the working directory.
func Binary() (string, error) {
	if p := os.Getenv("BULKHEAD_LAB_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("BULKHEAD_LAB_BIN=%s: %w (run make lab)", p, err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find bulkhead-lab: %w", err)
	}
	for {
		candidate := filepath.Join(dir, "bin", "bulkhead-lab")
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "lab", "go.mod")); err == nil {
				if _, err := os.Stat(candidate); err != nil {
					return "", fmt.Errorf("bulkhead-lab not found at %s: run make lab", candidate)
				}
				return candidate, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("bulkhead-lab not found: no repository root above the working directory; run make lab")
		}
		dir = parent
	}
}

// Start runs `bulkhead-lab up` in a new temporary directory and waits until it is ready.
func Start(opts Options) (*Lab, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bulkhead-lab-")
	if err != nil {
		return nil, fmt.Errorf("lab dir: %w", err)
	}
	lab, err := startIn(bin, dir, opts)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	lab.ownsDir = true
	return lab, nil
}

// StartIn runs `bulkhead-lab up` in dir, which it leaves in place on Close.
func StartIn(dir string, opts Options) (*Lab, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	return startIn(bin, dir, opts)
}

func startIn(bin, dir string, opts Options) (*Lab, error) {
	args := []string{"up", "--dir", dir}
	if opts.Nodes > 0 {
		args = append(args, "--nodes", strconv.Itoa(opts.Nodes))
	}
	if opts.PodsPerNode > 0 {
		args = append(args, "--pods-per-node", strconv.Itoa(opts.PodsPerNode))
	}
	if opts.Services > 0 {
		args = append(args, "--services", strconv.Itoa(opts.Services))
	}
	if opts.APIServers > 0 {
		args = append(args, "--apiservers", strconv.Itoa(opts.APIServers))
	}
	if opts.Endpoint != "" {
		args = append(args, "--endpoint", opts.Endpoint)
	}
	if opts.GoAwayChance > 0 {
		args = append(args, "--goaway-chance", strconv.FormatFloat(opts.GoAwayChance, 'g', -1, 64))
	}
	if opts.Prometheus != "" {
		args = append(args, "--prometheus", opts.Prometheus)
	}
	if opts.Background != "" {
		args = append(args, "--background", opts.Background)
	}
	args = append(args, opts.ExtraArgs...)
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 4 * time.Minute
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab dir: %w", err)
	}
	logPath := filepath.Join(dir, "lab.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("lab log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	// Pdeathsig: a test binary that is killed (a timeout, ^C) takes its lab with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("lab stdout: %w", err)
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	lab := &Lab{Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig"), LogPath: logPath, binary: bin, cmd: cmd, exited: make(chan struct{})}

	ready := make(chan struct{})
	go func() {
		scanner := bufio.NewScanner(stdout)
		signalled := false
		for scanner.Scan() {
			line := scanner.Text()
			fmt.Fprintln(logFile, line)
			if !signalled && strings.HasPrefix(line, ReadyPrefix) {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(logFile, stdout)
	}()
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(lab.exited)
	}()

	select {
	case <-ready:
	case <-lab.exited:
		return nil, fmt.Errorf("bulkhead-lab exited before it was ready (%s); its log:\n%s", cmd.ProcessState, tail(logPath))
	case <-time.After(timeout):
		lab.kill()
		return nil, fmt.Errorf("bulkhead-lab not ready after %s; its log:\n%s", timeout, tail(logPath))
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", lab.Kubeconfig)
	if err != nil {
		lab.kill()
		return nil, fmt.Errorf("lab kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		lab.kill()
		return nil, fmt.Errorf("lab client: %w", err)
	}
	lab.Config, lab.Client = cfg, client
	// Behind a balanced address the replicas cannot be reached one by one: metrics come through it.
	if opts.APIServers > 1 && opts.Endpoint != EndpointBalancer {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, err := lab.Status(ctx)
		cancel()
		if err != nil {
			lab.kill()
			return nil, err
		}
		lab.replicas = st.Replicas
	}
	return lab, nil
}

// Ctl runs `bulkhead-lab ctl --dir <lab> args...`, for example Ctl(ctx, "apiserver", "stop").
func (l *Lab) Ctl(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, l.binary, append([]string{"ctl", "--dir", l.Dir}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("bulkhead-lab ctl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Endpoint modes of Options.Endpoint and Status.Endpoint.
const (
	EndpointReplicas = "replicas"
	EndpointBalancer = "balancer"
)

// Status is what `bulkhead-lab ctl status` reports.
type Status struct {
	Server        string         `json:"server"`
	SupervisorPID int            `json:"supervisorPID"`
	ComponentPIDs map[string]int `json:"componentPIDs"`
	// ComponentRestarts counts unexpected deaths, e.g. kube-apiserver killed at its memory limit.
	ComponentRestarts map[string]int `json:"componentRestarts"`
	// APIServerUp says the API answers through Server.
	APIServerUp bool `json:"apiserverUp"`
	// Replicas are the kube-apiserver processes, by index.
	Replicas []ReplicaStatus `json:"replicas"`
	// Network is set when the lab runs several replicas, each in a network namespace of its own.
	Network *NetworkStatus `json:"network"`
	// Endpoint is what the default/kubernetes EndpointSlice lists with several replicas:
	// "replicas" or "balancer" (Network.BalancedAddress alone).
	Endpoint string `json:"endpoint"`
	// GoAwayChance is every replica's --goaway-chance (0: not passed).
	GoAwayChance float64 `json:"goawayChance"`
	// PrometheusURL is the HTTP API of the lab's Prometheus (Options.Prometheus); empty without.
	PrometheusURL string `json:"prometheusURL"`
}

// ReplicaStatus is one kube-apiserver replica of the lab.
type ReplicaStatus struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	// Address is host:port, as the default/kubernetes EndpointSlice lists it.
	Address     string `json:"address"`
	PID         int    `json:"pid"`
	Restarts    int    `json:"restarts"`
	Stopped     bool   `json:"stopped"`
	Up          bool   `json:"up"`
	Connections int    `json:"connections"`
	// Namespace (net:[inode]) and Link (the outer end of its veth pair) are the replica's own
	// network, with several replicas.
	Namespace string `json:"namespace"`
	Link      string `json:"link"`
}

// NetworkStatus is the network the lab made for its replicas.
type NetworkStatus struct {
	Subnet      string `json:"subnet"`
	HostAddress string `json:"hostAddress"`
	// BalancedAddress (host:port) is the balancer's one address with Endpoint "balancer", in a
	// network namespace of its own (BalancerNamespace, net:[inode]; BalancerLink the outer end
	// of its veth pair); the replicas are reachable only through it.
	BalancedAddress   string `json:"balancedAddress"`
	BalancerNamespace string `json:"balancerNamespace"`
	BalancerLink      string `json:"balancerLink"`
}

// Status asks the running lab for its processes and state.
func (l *Lab) Status(ctx context.Context) (Status, error) {
	var st Status
	out, err := exec.CommandContext(ctx, l.binary, "ctl", "--dir", l.Dir, "status").Output()
	if err != nil {
		return st, fmt.Errorf("bulkhead-lab ctl status: %w", err)
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("bulkhead-lab ctl status: %w", err)
	}
	return st, nil
}

// StopReplica stops kube-apiserver replica i (0-based); the others keep serving.
func (l *Lab) StopReplica(ctx context.Context, i int) error {
	return l.Ctl(ctx, "apiserver", "stop", "--replica", strconv.Itoa(i))
}

// StartReplica starts kube-apiserver replica i again and waits until it is ready.
func (l *Lab) StartReplica(ctx context.Context, i int) error {
	return l.Ctl(ctx, "apiserver", "start", "--replica", strconv.Itoa(i))
}

// ReplicaConfig is the lab's admin client configuration aimed at one replica directly (its
// address, which its certificate names), bypassing the load balancer.
func (l *Lab) ReplicaConfig(r ReplicaStatus) *rest.Config {
	cfg := rest.CopyConfig(l.Config)
	cfg.Host = "https://" + r.Address
	return cfg
}

// Close stops the lab with SIGTERM, waits for it and removes its directory when Start made it.
func (l *Lab) Close() error {
	_ = l.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-l.exited:
	case <-time.After(60 * time.Second):
		l.kill()
		return fmt.Errorf("bulkhead-lab did not stop within 60s of SIGTERM; killed it")
	}
	if l.ownsDir {
		return os.RemoveAll(l.Dir)
	}
	return nil
}

func (l *Lab) kill() {
	_ = syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
	<-l.exited
}

// New starts a lab for one test and stops it when the test ends; a lab that cannot start fails
// the test. Packages that need a second kind of lab (for example several apiservers) use it
// in the one test that needs it, so that it runs only while that test does.
func New(t testing.TB, opts Options) *Lab {
	t.Helper()
	started, err := Start(opts)
	if err != nil {
		t.Fatalf("the lab did not start: %v", err)
	}
	t.Cleanup(func() {
		if err := started.Close(); err != nil {
			t.Errorf("stopping the lab: %v", err)
		}
	})
	return started
}

// Run is for TestMain: it starts one lab for the package, stores it in *lab, runs the tests and
// stops the lab. A lab that cannot start fails the package with the reason.
func Run(m *testing.M, opts Options, lab **Lab) int {
	started, err := Start(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the lab did not start: %v\n", err)
		return 1
	}
	*lab = started
	code := m.Run()
	if err := started.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: stopping the lab: %v\n", err)
		return 1
	}
	return code
}

func tail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const keep = 4000
	if len(data) > keep {
		data = data[len(data)-keep:]
	}
	return string(data)
}
