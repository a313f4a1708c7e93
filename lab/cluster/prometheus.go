package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"sigs.k8s.io/yaml"
)

// prometheusIdentity is the client certificate Prometheus scrapes with. Its group
// system:monitoring is bound by Kubernetes' bootstrap RBAC policy to the ClusterRole of the same
// name, which may get /metrics, the health endpoints and nodes' metrics, and no API object:
// what a production Prometheus is given.
const prometheusIdentity = "prometheus"

// prometheusScrapeInterval is 5 s because bulkhead reads rates between snapshots taken tens of
// seconds apart (a rollout's soak, the tests' 15 s), and a snapshot from Prometheus is only as
// fresh as its latest scrape: with the default 1 m two such snapshots would often read the same
// sample. Faster would cost the small lab machine more, as each replica's /metrics is megabytes.
const prometheusScrapeInterval = 5 * time.Second

// prometheusServer is a Prometheus the lab runs beside the control plane (--prometheus): a child
// process listening on 127.0.0.1 only, with its storage under the lab directory, that scrapes
// every kube-apiserver replica's /metrics directly, as job "apiserver" with the replica's address
// as instance — what bulkhead's Prometheus source expects of a production one.
type prometheusServer struct {
	url  string
	proc *component
}

// checkPrometheusBinary says what is wrong with --prometheus: empty (none) is fine, otherwise
// it must be an executable program, an ELF binary or a script (a file with the execute bit
// alone would fail only once the control plane is up).
func checkPrometheusBinary(path string) error {
	if path == "" {
		return nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("--prometheus %s: %w (make prometheus installs one)", path, err)
	}
	if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("--prometheus %s is not an executable file (mode %s)", path, info.Mode())
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--prometheus %s: %w", path, err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil || !(bytes.Equal(magic, []byte("\x7fELF")) || bytes.HasPrefix(magic, []byte("#!"))) {
		return fmt.Errorf("--prometheus %s is not a program (neither an ELF binary nor a script)", path)
	}
	return nil
}

// prometheusConfig is the part of Prometheus's configuration file the lab writes.
type prometheusConfig struct {
	Global struct {
		ScrapeInterval string `json:"scrape_interval"`
		ScrapeTimeout  string `json:"scrape_timeout"`
	} `json:"global"`
	ScrapeConfigs []scrapeConfig `json:"scrape_configs"`
}

type scrapeConfig struct {
	JobName       string         `json:"job_name"`
	Scheme        string         `json:"scheme"`
	MetricsPath   string         `json:"metrics_path"`
	TLSConfig     tlsConfig      `json:"tls_config"`
	StaticConfigs []staticConfig `json:"static_configs"`
}

type tlsConfig struct {
	CAFile   string `json:"ca_file"`
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

type staticConfig struct {
	Targets []string `json:"targets"`
}

// startPrometheus writes Prometheus's configuration, starts it and waits until it is ready.
func (l *lab) startPrometheus(ctx context.Context) (*prometheusServer, error) {
	binary, err := filepath.Abs(l.opts.Prometheus)
	if err != nil {
		return nil, fmt.Errorf("--prometheus %s: %w", l.opts.Prometheus, err)
	}
	// A new lab starts with no earlier run's series.
	dir := filepath.Join(l.dir, "prometheus")
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clean %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("prometheus dir: %w", err)
	}

	// Prometheus labels each target's series with instance = the target, the replica's address.
	var targets []string
	for _, r := range l.replicas {
		targets = append(targets, r.address)
	}
	files := l.bundle.Clients[prometheusIdentity]
	var config prometheusConfig
	config.Global.ScrapeInterval = prometheusScrapeInterval.String()
	config.Global.ScrapeTimeout = prometheusScrapeInterval.String()
	config.ScrapeConfigs = []scrapeConfig{{
		JobName: "apiserver", Scheme: "https", MetricsPath: "/metrics",
		TLSConfig:     tlsConfig{CAFile: l.bundle.CACert, CertFile: files.Cert, KeyFile: files.Key},
		StaticConfigs: []staticConfig{{Targets: targets}},
	}}
	data, err := yaml.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("prometheus config: %w", err)
	}
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, data, 0o600); err != nil {
		return nil, fmt.Errorf("write prometheus config: %w", err)
	}

	port, err := reservePort(0)
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p := &prometheusServer{url: "http://" + listen}
	p.proc = newComponent("prometheus", filepath.Join(l.dir, "prometheus.log"), []string{
		"--config.file=" + configPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + listen,
		// Its links and redirects name the address it listens on, not this machine's hostname.
		"--web.external-url=" + p.url + "/",
	})
	p.proc.binary = binary
	if err := p.proc.start(); err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, time.Minute); err != nil {
		p.proc.close(componentGrace)
		return nil, err
	}
	return p, nil
}

// waitReady polls Prometheus's /-/ready until it answers 200 or timeout passes.
func (p *prometheusServer) waitReady(ctx context.Context, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/-/ready", nil)
		if err != nil {
			return fmt.Errorf("prometheus readiness request: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("prometheus at %s not ready after %s (last answer: %v); see %s", p.url, timeout, err, p.proc.logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
