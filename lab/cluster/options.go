package cluster

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// Options size and shape the lab.
type Options struct {
	Dir                         string
	Nodes                       int
	PodsPerNode                 int
	Services                    int
	MaxRequestsInflight         int
	MaxMutatingRequestsInflight int
	// Port is the kubeconfig's server port on 127.0.0.1 (the apiserver's own with one replica,
	// the load balancer's with more); 0 picks a free one.
	Port int
	// APIServers is the number of kube-apiserver replicas. With more than one, each runs inside
	// a network namespace the lab creates, behind the lab's load balancer (see network.go).
	APIServers int
	// APIServerMemoryLimit confines each kube-apiserver replica to this many bytes, as a pod's
	// limit would: past it the OOM killer ends it and the lab restarts it. 0 means no limit.
	APIServerMemoryLimit int64
	// APIServerCPUs confines each kube-apiserver replica to this many cores of CPU time, as a
	// pod's CPU limit would (a CFS bandwidth quota): its capacity is then explicit, and it cannot
	// take the cores the emulator and the other components need. 0 means no limit.
	APIServerCPUs float64
	// Endpoint is what the default/kubernetes EndpointSlice lists with several replicas:
	// EndpointReplicas, each replica's own address, or EndpointBalancer, the load balancer's
	// one address, as a managed control plane (EKS, GKE, AKS) shows it (see network.go).
	Endpoint string
	// GoAwayChance is every replica's --goaway-chance (0 ≤ F ≤ 0.02), with which managed
	// providers rebalance long-lived HTTP/2 connections; 0 leaves the flag out.
	GoAwayChance float64
	// Prometheus is the path of a prometheus binary the lab runs beside the control plane,
	// scraping every replica's /metrics (see prometheus.go); empty means none.
	Prometheus string
	// Background is the other clients' load the lab adds once ready: BackgroundNone, or
	// BackgroundBusy, a production cluster's CI, controllers, watchers and jobs (background.go).
	Background string
}

// Endpoint modes: what the default/kubernetes EndpointSlice lists with several replicas.
const (
	EndpointReplicas = "replicas"
	EndpointBalancer = "balancer"
)

// MaxGoAwayChance is kube-apiserver's own bound for --goaway-chance.
const MaxGoAwayChance = 0.02

// MaxAPIServers bounds --apiservers: each replica is a full kube-apiserver (hundreds of MiB).
const MaxAPIServers = 9

// DefaultOptions are the sizes `bulkhead-lab up` uses without flags.
func DefaultOptions() Options {
	return Options{
		Dir:                         ".lab",
		Nodes:                       200,
		PodsPerNode:                 10,
		Services:                    50,
		MaxRequestsInflight:         400,
		MaxMutatingRequestsInflight: 200,
		APIServers:                  1,
		Endpoint:                    EndpointReplicas,
		Background:                  BackgroundNone,
	}
}

// Validate checks the options without starting anything.
func (o Options) Validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("--dir must not be empty"))
	}
	if o.Nodes <= 0 {
		errs = append(errs, fmt.Errorf("--nodes must be at least 1, got %d", o.Nodes))
	}
	if o.PodsPerNode < 0 {
		errs = append(errs, fmt.Errorf("--pods-per-node must not be negative, got %d", o.PodsPerNode))
	}
	if o.PodsPerNode > 100 {
		errs = append(errs, fmt.Errorf("--pods-per-node must be at most 100 (nodes allow 110 pods, DaemonSets need room), got %d", o.PodsPerNode))
	}
	if o.Services < 0 {
		errs = append(errs, fmt.Errorf("--services must not be negative, got %d", o.Services))
	}
	if o.PodsPerNode > 0 && o.Services == 0 {
		errs = append(errs, errors.New("--pods-per-node needs at least one service: filler pods belong to the services' Deployments"))
	}
	if o.MaxRequestsInflight <= 0 {
		errs = append(errs, fmt.Errorf("--max-requests-inflight must be at least 1, got %d", o.MaxRequestsInflight))
	}
	if o.MaxMutatingRequestsInflight <= 0 {
		errs = append(errs, fmt.Errorf("--max-mutating-requests-inflight must be at least 1, got %d", o.MaxMutatingRequestsInflight))
	}
	if o.Port < 0 || o.Port > 65535 {
		errs = append(errs, fmt.Errorf("--port must be between 0 and 65535, got %d", o.Port))
	}
	if o.APIServers < 1 || o.APIServers > MaxAPIServers {
		errs = append(errs, fmt.Errorf("--apiservers must be between 1 and %d, got %d", MaxAPIServers, o.APIServers))
	}
	if o.APIServerMemoryLimit < 0 || (o.APIServerMemoryLimit > 0 && o.APIServerMemoryLimit < 256<<20) {
		errs = append(errs, fmt.Errorf("--apiserver-memory-limit must be 0 (none) or at least 256Mi, got %d bytes", o.APIServerMemoryLimit))
	}
	if o.APIServerCPUs < 0 || math.IsNaN(o.APIServerCPUs) || (o.APIServerCPUs > 0 && o.APIServerCPUs < 0.1) {
		errs = append(errs, fmt.Errorf("--apiserver-cpus must be 0 (none) or at least 0.1, got %v", o.APIServerCPUs))
	}
	switch o.Endpoint {
	case EndpointReplicas:
	case EndpointBalancer:
		if o.APIServers < 2 {
			errs = append(errs, fmt.Errorf("--endpoint %s needs --apiservers > 1 (one replica listens on 127.0.0.1, which no EndpointSlice may list), got %d", EndpointBalancer, o.APIServers))
		}
	default:
		errs = append(errs, fmt.Errorf("--endpoint must be %s or %s, got %q", EndpointReplicas, EndpointBalancer, o.Endpoint))
	}
	if !(o.GoAwayChance >= 0 && o.GoAwayChance <= MaxGoAwayChance) {
		errs = append(errs, fmt.Errorf("--goaway-chance must be between 0 and %g (kube-apiserver's bound), got %v", MaxGoAwayChance, o.GoAwayChance))
	}
	if o.Nodes > 32768 {
		errs = append(errs, fmt.Errorf("--nodes must be at most 32768 (one /24 pod CIDR per node in 10.128.0.0/9), got %d", o.Nodes))
	}
	if o.Background != BackgroundNone && o.Background != BackgroundBusy {
		errs = append(errs, fmt.Errorf("--background must be %s or %s, got %q", BackgroundNone, BackgroundBusy, o.Background))
	}
	if err := checkPrometheusBinary(o.Prometheus); err != nil {
		errs = append(errs, err)
	}
	if o.Prometheus != "" && o.Endpoint == EndpointBalancer {
		errs = append(errs, fmt.Errorf("--prometheus scrapes each replica directly, which --endpoint %s hides from this machine", EndpointBalancer))
	}
	return errors.Join(errs...)
}

// checkDir makes sure dir exists (creating it) and is writable.
func checkDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--dir %s: %w", dir, err)
	}
	probe, err := os.CreateTemp(dir, ".write-check-")
	if err != nil {
		return fmt.Errorf("--dir %s is not writable: %w", dir, err)
	}
	probe.Close()
	return os.Remove(probe.Name())
}

// reservePort returns a free 127.0.0.1 port, or checks that a requested one is free.
func reservePort(port int) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, fmt.Errorf("port %d on 127.0.0.1 is not available: %w", port, err)
	}
	got := l.Addr().(*net.TCPAddr).Port
	return got, l.Close()
}

func absDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("--dir %s: %w", dir, err)
	}
	return abs, nil
}
