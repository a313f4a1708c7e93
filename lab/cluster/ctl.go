package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// SocketName is the control socket inside the lab directory.
const SocketName = "ctl.sock"

// etcdSocketName is the unix socket etcd serves the replicas on, inside the lab directory.
const etcdSocketName = "etcd.sock"

// Status describes a running lab, as served on the control socket.
type Status struct {
	// Server is the kubeconfig's: the one replica, or the load balancer in front of several.
	Server        string         `json:"server"`
	Kubeconfig    string         `json:"kubeconfig"`
	SupervisorPID int            `json:"supervisorPID"`
	ComponentPIDs map[string]int `json:"componentPIDs"` // 0 when stopped
	// ComponentRestarts counts unexpected exits, for example kube-apiserver killed at its memory limit.
	ComponentRestarts map[string]int `json:"componentRestarts"`
	// APIServerUp says the API answers /readyz through Server (some replica is ready).
	APIServerUp    bool    `json:"apiserverUp"`
	MaxInflight    int     `json:"maxRequestsInflight"`
	MaxMutating    int     `json:"maxMutatingRequestsInflight"`
	Nodes          int     `json:"nodes"`
	FillerPods     int     `json:"fillerPods"`
	Services       int     `json:"services"`
	StartupSeconds float64 `json:"startupSeconds"`
	// APIServerCPUs and APIServerMemoryLimit are each kube-apiserver replica's cgroup limits (0: none).
	APIServerCPUs        float64 `json:"apiserverCPUs,omitempty"`
	APIServerMemoryLimit int64   `json:"apiserverMemoryLimit,omitempty"`
	// Endpoint is what the default/kubernetes EndpointSlice lists with several replicas:
	// "replicas" (each one's address) or "balancer" (NetworkStatus.BalancedAddress alone).
	Endpoint string `json:"endpoint"`
	// GoAwayChance is every replica's --goaway-chance (0: not passed).
	GoAwayChance float64 `json:"goawayChance,omitempty"`
	// Replicas are the kube-apiserver processes, by index (the --replica of `ctl apiserver`).
	Replicas []ReplicaStatus `json:"replicas"`
	// Network is where the replicas live when there are several; nil with one.
	Network *NetworkStatus `json:"network,omitempty"`
	// PrometheusURL is the HTTP API of the Prometheus scraping the replicas (--prometheus).
	PrometheusURL string `json:"prometheusURL,omitempty"`
}

// ReplicaStatus is one kube-apiserver replica.
type ReplicaStatus struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	// Address is where the replica listens, as the default/kubernetes EndpointSlice lists it.
	Address  string `json:"address"`
	PID      int    `json:"pid"` // 0 when stopped
	Restarts int    `json:"restarts"`
	// Stopped is true after `ctl apiserver stop`, until `start`.
	Stopped bool `json:"stopped"`
	// Up says the replica itself answers /readyz ok now.
	Up bool `json:"up"`
	// Connections counts client connections the load balancer holds to it.
	Connections int `json:"connections"`
	// Namespace is the replica's network namespace as /proc/<pid>/ns/net links read it
	// (net:[inode]) and Link the outer end of its veth pair; both empty with one replica.
	Namespace string `json:"namespace,omitempty"`
	Link      string `json:"link,omitempty"`
}

// NetworkStatus describes the replicas' network.
type NetworkStatus struct {
	// Subnet is the lab's /24; HostAddress the outer ends' address in the lab's namespace, the
	// source of clients' packets to the replicas, or to the balanced address.
	Subnet      string `json:"subnet"`
	HostAddress string `json:"hostAddress"`
	// BalancedAddress (host:port) is where the balancer listens in a network namespace of its
	// own (BalancerNamespace, net:[inode]; BalancerLink the outer end of its veth pair) with
	// --endpoint balancer; clients on this machine reach the replicas only through it.
	BalancedAddress   string `json:"balancedAddress,omitempty"`
	BalancerNamespace string `json:"balancerNamespace,omitempty"`
	BalancerLink      string `json:"balancerLink,omitempty"`
}

// Balancer lists the load balancer's connections.
type Balancer struct {
	Address     string               `json:"address"`
	Connections []BalancedConnection `json:"connections"`
}

// Call sends one request to the lab running in dir and returns the response body.
func Call(ctx context.Context, dir, method, path string) ([]byte, error) {
	sock := filepath.Join(dir, SocketName)
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, method, "http://lab"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no lab answers in %s (is `bulkhead-lab up --dir %s` running?): %w", dir, dir, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read lab response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("lab: %s", body)
	}
	return body, nil
}

// serveControl serves the control API until ctx ends.
func (l *lab) serveControl(ctx context.Context) error {
	sock := filepath.Join(l.dir, SocketName)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", sock, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /apiserver/stop", func(w http.ResponseWriter, r *http.Request) {
		chosen, err := l.chosenReplicas(r.URL.Query().Get("replica"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rep := range chosen {
			rep.stopReplica(componentGrace)
			fmt.Fprintf(w, "%s stopped\n", rep.name())
		}
	})
	mux.HandleFunc("POST /apiserver/start", func(w http.ResponseWriter, r *http.Request) {
		chosen, err := l.chosenReplicas(r.URL.Query().Get("replica"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		start := time.Now()
		for _, rep := range chosen {
			if err := rep.proc.start(); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		for _, rep := range chosen {
			if err := rep.waitReady(r.Context(), 2*time.Minute); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(w, "%s ready in %.1fs\n", rep.name(), time.Since(start).Seconds())
		}
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, l.status(r.Context()))
	})
	mux.HandleFunc("GET /balancer", func(w http.ResponseWriter, r *http.Request) {
		if l.balancer == nil {
			http.Error(w, "this lab has one kube-apiserver and no load balancer (start it with --apiservers 3)", http.StatusBadRequest)
			return
		}
		writeJSON(w, Balancer{Address: l.server, Connections: l.balancer.connections()})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, l.stats.Snapshot(r.URL.Query().Get("reset") == "true"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	go func() { _ = srv.Serve(ln) }()
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// chosenReplicas parses the replica query parameter: empty means every replica.
func (l *lab) chosenReplicas(param string) ([]*apiserverReplica, error) {
	if param == "" {
		return l.replicas, nil
	}
	i, err := strconv.Atoi(param)
	if err != nil || i < 0 || i >= len(l.replicas) {
		return nil, fmt.Errorf("--replica %s: this lab has %d kube-apiserver replicas, numbered 0 to %d", param, len(l.replicas), len(l.replicas)-1)
	}
	return l.replicas[i : i+1], nil
}

func (l *lab) status(ctx context.Context) Status {
	probeCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	body, err := l.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(probeCtx)
	st := Status{
		Server:        l.server,
		Kubeconfig:    l.kubeconfig,
		SupervisorPID: os.Getpid(),
		ComponentPIDs: map[string]int{
			"kube-controller-manager": l.controllerManager.pid(),
			"kube-scheduler":          l.scheduler.pid(),
		},
		ComponentRestarts: map[string]int{
			"kube-controller-manager": l.controllerManager.restartCount(),
			"kube-scheduler":          l.scheduler.restartCount(),
		},
		APIServerUp:    err == nil && string(body) == "ok",
		MaxInflight:    l.opts.MaxRequestsInflight,
		MaxMutating:    l.opts.MaxMutatingRequestsInflight,
		Nodes:          l.opts.Nodes,
		FillerPods:     l.opts.Nodes * l.opts.PodsPerNode,
		Services:       l.opts.Services,
		StartupSeconds: l.startup.Seconds(),

		APIServerCPUs:        l.opts.APIServerCPUs,
		APIServerMemoryLimit: l.opts.APIServerMemoryLimit,
		Endpoint:             l.opts.Endpoint,
		GoAwayChance:         l.opts.GoAwayChance,
		Replicas:             make([]ReplicaStatus, len(l.replicas)),
	}
	if l.prometheus != nil {
		st.PrometheusURL = l.prometheus.url
		st.ComponentPIDs["prometheus"] = l.prometheus.proc.pid()
		st.ComponentRestarts["prometheus"] = l.prometheus.proc.restartCount()
	}
	connections := map[int]int{}
	if l.balancer != nil {
		for _, c := range l.balancer.connections() {
			connections[c.Replica]++
		}
		st.Network = &NetworkStatus{Subnet: l.network.subnet.String(), HostAddress: l.network.host.String()}
		if b := l.network.balancer; b != nil {
			st.Network.BalancedAddress, st.Network.BalancerNamespace, st.Network.BalancerLink = l.network.balancedAddress(), b.inode, b.link
		}
	}
	var wg sync.WaitGroup
	for i, r := range l.replicas {
		st.ComponentPIDs[r.name()] = r.proc.pid()
		st.ComponentRestarts[r.name()] = r.proc.restartCount()
		st.Replicas[i] = ReplicaStatus{
			Index: i, Name: r.name(), Address: r.address, PID: r.proc.pid(), Restarts: r.proc.restartCount(),
			Stopped: !r.proc.isWanted(), Connections: connections[i],
		}
		if l.network != nil {
			st.Replicas[i].Namespace, st.Replicas[i].Link = l.network.inodes[i], l.network.links[i]
		}
		wg.Go(func() { st.Replicas[i].Up = r.answersReadyz(ctx) })
	}
	wg.Wait()
	return st
}
