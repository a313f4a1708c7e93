package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// Source takes snapshots of the API servers: a *Scraper (replicas discovered, or balanced
// addresses) or a *PrometheusSource.
type Source interface {
	Scrape(ctx context.Context) Snapshot
}

// SourceOptions choose where the gate reads the API servers' metrics: the flags
// --metrics-source, --prometheus, --prometheus-selector, --prometheus-token-file and
// --prometheus-ca-file of `bulkhead rollout` and `bulkhead controller`.
type SourceOptions struct {
	// Kind is "auto" (default), "replicas", "balanced" or "prometheus"; see SourceKinds.
	Kind string
	// Prometheus is the Prometheus base URL; it implies Kind "prometheus" with "auto".
	Prometheus string
	// Selector picks the kube-apiserver series in Prometheus; default job="apiserver".
	Selector string
	// TokenFile holds a bearer token for Prometheus, read again at every query (tokens rotate);
	// CAFile the CA bundle its HTTPS certificate verifies against.
	TokenFile, CAFile string
}

// SourceKinds are the values of SourceOptions.Kind.
var SourceKinds = []string{"auto", "replicas", "balanced", "prometheus"}

// DefaultPrometheusSelector selects the kube-apiserver's series as the Prometheus Operator's and
// kube-prometheus's scrape configs label them.
const DefaultPrometheusSelector = `job="apiserver"`

// Validate checks the options without reaching anything; its errors name the flags.
func (o SourceOptions) Validate() error {
	kind := o.kind()
	var errs []error
	if !slices.Contains(SourceKinds, kind) {
		errs = append(errs, fmt.Errorf("--metrics-source %q: want one of %s", o.Kind, strings.Join(SourceKinds, ", ")))
	}
	if kind == "prometheus" && o.Prometheus == "" {
		errs = append(errs, errors.New("--metrics-source prometheus needs --prometheus URL"))
	}
	if o.Prometheus != "" && kind != "prometheus" {
		errs = append(errs, fmt.Errorf("--prometheus reads the metrics from Prometheus; it contradicts --metrics-source %s", kind))
	}
	if kind != "prometheus" && (o.TokenFile != "" || o.CAFile != "" || o.Selector != "") {
		errs = append(errs, errors.New("--prometheus-selector, --prometheus-token-file and --prometheus-ca-file need --prometheus URL"))
	}
	if kind == "prometheus" && o.Prometheus != "" {
		if _, err := NewPrometheusSource(o.Prometheus, o.selector(), nil); err != nil {
			errs = append(errs, fmt.Errorf("--prometheus: %w", err))
		}
		for flag, file := range map[string]string{"--prometheus-token-file": o.TokenFile, "--prometheus-ca-file": o.CAFile} {
			if file == "" {
				continue
			}
			if _, err := os.Stat(file); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", flag, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (o SourceOptions) kind() string {
	if (o.Kind == "" || o.Kind == "auto") && o.Prometheus != "" {
		return "prometheus"
	}
	if o.Kind == "" {
		return "auto"
	}
	return o.Kind
}

func (o SourceOptions) selector() string {
	if o.Selector == "" {
		return DefaultPrometheusSelector
	}
	return o.Selector
}

// NewSource builds the source the options choose, reading the API servers through cfg's
// credentials (every kind but prometheus).
func NewSource(cfg *rest.Config, o SourceOptions) (Source, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.kind() != "prometheus" {
		return NewScraper(cfg, Options{Endpoint: Endpoint(o.kind())})
	}
	client, err := prometheusClient(o.TokenFile, o.CAFile)
	if err != nil {
		return nil, err
	}
	return NewPrometheusSource(o.Prometheus, o.selector(), client)
}

// prometheusClient trusts caFile (when given, beside the system's roots) and sends the token in
// tokenFile, read at every request so that a rotated token is used.
func prometheusClient(tokenFile, caFile string) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--prometheus-ca-file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--prometheus-ca-file %s holds no PEM certificate", caFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	var rt http.RoundTripper = transport
	if tokenFile != "" {
		rt = bearerFromFile{file: tokenFile, next: transport}
	}
	return &http.Client{Transport: rt, Timeout: 30 * time.Second}, nil
}

type bearerFromFile struct {
	file string
	next http.RoundTripper
}

func (b bearerFromFile) RoundTrip(req *http.Request) (*http.Response, error) {
	token, err := os.ReadFile(b.file)
	if err != nil {
		return nil, fmt.Errorf("--prometheus-token-file: %w", err)
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	return b.next.RoundTrip(req)
}

// Scrape is the snapshot of the series' latest samples, as a Scraper's would be: a query that
// fails gives a snapshot whose one entry carries the error, so that a reading counts Prometheus
// as unreachable rather than the servers as idle.
func (p *PrometheusSource) Scrape(ctx context.Context) Snapshot {
	source := "prometheus " + p.base.String()
	snap, err := p.SnapshotAt(ctx, time.Now())
	if err != nil {
		return Snapshot{Source: source, Replicas: []ReplicaScrape{{Replica: source, Taken: time.Now(), Err: err}}}
	}
	snap.Source = source
	snap.Believed, snap.BelievedFrom = len(snap.Replicas), "the instances Prometheus scrapes"
	return snap
}
