package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"time"
)

// SocketName is the control socket inside the lab directory.
const SocketName = "ctl.sock"

// Status describes a running lab, as served on the control socket.
type Status struct {
	Server        string         `json:"server"`
	Kubeconfig    string         `json:"kubeconfig"`
	SupervisorPID int            `json:"supervisorPID"`
	ComponentPIDs map[string]int `json:"componentPIDs"` // 0 when stopped
	// ComponentRestarts counts unexpected exits, for example kube-apiserver killed at its memory limit.
	ComponentRestarts map[string]int `json:"componentRestarts"`
	APIServerUp       bool           `json:"apiserverUp"`
	MaxInflight       int            `json:"maxRequestsInflight"`
	MaxMutating       int            `json:"maxMutatingRequestsInflight"`
	Nodes             int            `json:"nodes"`
	FillerPods        int            `json:"fillerPods"`
	Services          int            `json:"services"`
	StartupSeconds    float64        `json:"startupSeconds"`
	// APIServerCPUs and APIServerMemoryLimit are kube-apiserver's cgroup limits (0: none).
	APIServerCPUs        float64 `json:"apiserverCPUs,omitempty"`
	APIServerMemoryLimit int64   `json:"apiserverMemoryLimit,omitempty"`
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
		l.apiserver.stop(componentGrace)
		fmt.Fprintln(w, "apiserver stopped")
	})
	mux.HandleFunc("POST /apiserver/start", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if err := l.apiserver.start(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := l.waitAPIServer(r.Context(), 2*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "apiserver ready in %.1fs\n", time.Since(start).Seconds())
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, l.status(r.Context()))
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
