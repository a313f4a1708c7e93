package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listers "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Options tune a Scraper.
type Options struct {
	// Timeout bounds each replica's scrape; default 5 s.
	Timeout time.Duration
	// NoDiscovery scrapes only the kubeconfig's server, for control planes whose replicas are not
	// reachable from the client (a managed load balancer in front of private addresses).
	NoDiscovery bool
	// MaxBytes caps a /metrics body; default 256 MiB.
	MaxBytes int64
	// Endpoint says what an address is: EndpointAuto (the default), EndpointReplicas or
	// EndpointBalanced.
	Endpoint Endpoint
}

// Endpoint says whether an address Scrape reads is one kube-apiserver replica or a balancer in
// front of several.
type Endpoint string

const (
	// EndpointAuto reads each address as one replica, unless the identity Leases count more live
	// API servers than there are addresses: then the addresses are balanced.
	EndpointAuto Endpoint = "auto"
	// EndpointReplicas reads each address as one replica (a changed process is a restart).
	EndpointReplicas Endpoint = "replicas"
	// EndpointBalanced reads each address as a load balancer: over several kept connections,
	// each one process's, and a rate only between two scrapes over one connection (process.go).
	EndpointBalanced Endpoint = "balanced"
)

// Endpoints are the values Options.Endpoint takes.
var Endpoints = []Endpoint{EndpointAuto, EndpointReplicas, EndpointBalanced}

// Scraper reads /metrics from every kube-apiserver replica. Replicas come from the
// default/kubernetes EndpointSlice, kept current by a watch (one long-running request, never a
// periodic LIST); until the watch has synced, or when it lists nothing, the kubeconfig's server is
// the only replica.
type Scraper struct {
	client *http.Client
	// pinned is the config the client was built from: balanced addresses open slots with it.
	pinned   *rest.Config
	scheme   string
	basePath string
	fallback string
	opts     Options
	slices   listers.EndpointSliceLister
	synced   cache.InformerSynced
	start    sync.Once
	// discoveryClient watches the EndpointSlices; nil with Options.NoDiscovery.
	discoveryClient kubernetes.Interface
	// identity counts the live API server processes; nil with Options.NoDiscovery.
	identity *identityLeases

	mu           sync.Mutex
	discoveryErr error
	// balanced keeps, per balanced address, the connections kept to its processes (process.go).
	balanced map[string]*balancedAddress
}

// kubernetesServiceSelector picks the EndpointSlices of the default/kubernetes Service.
const kubernetesServiceSelector = discoveryv1.LabelServiceName + "=kubernetes"

// NewScraper builds a Scraper from the client's rest.Config: it reuses its TLS and
// authentication, and pins the TLS server name to the kubeconfig's host so that certificates
// verify when the scraper dials a replica by address.
func NewScraper(cfg *rest.Config, opts Options) (*Scraper, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 256 << 20
	}
	if opts.Endpoint == "" {
		opts.Endpoint = EndpointAuto
	}
	if !slices.Contains(Endpoints, opts.Endpoint) {
		return nil, fmt.Errorf("endpoint %q: want one of %v", opts.Endpoint, Endpoints)
	}
	server, err := url.Parse(cfg.Host)
	if err != nil || server.Host == "" {
		return nil, fmt.Errorf("kubeconfig server %q is not a URL with a host", cfg.Host)
	}
	pinned := rest.CopyConfig(cfg)
	if pinned.TLSClientConfig.ServerName == "" {
		pinned.TLSClientConfig.ServerName = server.Hostname()
	}
	client, err := rest.HTTPClientFor(pinned)
	if err != nil {
		return nil, fmt.Errorf("HTTP client for %s: %w", cfg.Host, err)
	}
	s := &Scraper{client: client, pinned: pinned, scheme: server.Scheme, basePath: strings.TrimSuffix(server.Path, "/"),
		fallback: server.Host, opts: opts, balanced: map[string]*balancedAddress{}}
	if server.Port() == "" {
		port := "443"
		if server.Scheme == "http" {
			port = "80"
		}
		s.fallback = net.JoinHostPort(server.Hostname(), port)
	}
	if !opts.NoDiscovery {
		s.discoveryClient, err = kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("client for replica discovery: %w", err)
		}
		s.identity = &identityLeases{client: s.discoveryClient}
	}
	return s, nil
}

// Start begins watching the default/kubernetes EndpointSlice until ctx ends. Scrape calls it
// when the caller did not.
func (s *Scraper) Start(ctx context.Context) {
	if s.discoveryClient == nil {
		return
	}
	s.start.Do(func() {
		factory := informers.NewSharedInformerFactoryWithOptions(s.discoveryClient, 0,
			informers.WithNamespace(metav1.NamespaceDefault),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = kubernetesServiceSelector }))
		informer := factory.Discovery().V1().EndpointSlices()
		s.slices, s.synced = informer.Lister(), informer.Informer().HasSynced
		// Keep watch failures (no RBAC, apiserver down) for DiscoveryError instead of letting
		// client-go log them over the terminal view; the fallback replica keeps top going.
		_ = informer.Informer().SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.discoveryErr = err
		})
		factory.Start(ctx.Done())
		s.identity.run(ctx)
	})
}

// WaitForDiscovery starts the EndpointSlice and identity Lease watches for as long as ctx lives
// and waits at most timeout for them to sync. It reports whether the EndpointSlices did; until
// then Scrape reads the kubeconfig's server only.
func (s *Scraper) WaitForDiscovery(ctx context.Context, timeout time.Duration) bool {
	s.Start(ctx)
	if s.synced == nil {
		return true
	}
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !cache.WaitForCacheSync(waitCtx.Done(), s.synced) {
		return false
	}
	// The identity Leases decide whether an address is balanced (EndpointAuto): a first scrape
	// before they synced would read a balancer as one replica. An identity that may not read
	// them goes on without (the count is then "unknown").
	_ = wait.PollUntilContextCancel(waitCtx, 50*time.Millisecond, true, func(context.Context) (bool, error) {
		return s.identity.settled(), nil
	})
	return true
}

// DiscoveryError is the last error of the EndpointSlice watch, or nil.
func (s *Scraper) DiscoveryError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.discoveryErr == nil {
		return nil
	}
	return fmt.Errorf("watching the default/kubernetes EndpointSlices: %w", s.discoveryErr)
}

// Replicas lists the replicas the next Scrape will read, as host:port. Before Start (or Scrape,
// or WaitForDiscovery) it is the kubeconfig's server.
func (s *Scraper) Replicas() []string {
	if s.slices == nil || !s.synced() {
		return []string{s.fallback}
	}
	found, err := s.slices.EndpointSlices(metav1.NamespaceDefault).List(labels.Everything())
	if err != nil {
		return []string{s.fallback}
	}
	if replicas := ReplicasOf(found); len(replicas) > 0 {
		return replicas
	}
	return []string{s.fallback}
}

// ReplicasOf returns the host:port of every ready endpoint of the kubernetes Service's
// EndpointSlices, using the port named https (or the only port).
func ReplicasOf(endpointSlices []*discoveryv1.EndpointSlice) []string {
	var out []string
	for _, slice := range endpointSlices {
		port := httpsPort(slice.Ports)
		if port == 0 {
			continue
		}
		for _, ep := range slice.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, addr := range ep.Addresses {
				out = append(out, net.JoinHostPort(addr, strconv.Itoa(int(port))))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func httpsPort(ports []discoveryv1.EndpointPort) int32 {
	for _, p := range ports {
		if p.Name != nil && *p.Name == "https" && p.Port != nil {
			return *p.Port
		}
	}
	if len(ports) == 1 && ports[0].Port != nil {
		return *ports[0].Port
	}
	return 0
}

// Scrape reads every replica concurrently, each bounded by the timeout, or every balanced
// address (see Options.Endpoint). A replica that fails carries its error in the snapshot; Scrape
// itself does not fail.
func (s *Scraper) Scrape(ctx context.Context) Snapshot {
	s.Start(ctx)
	replicas := s.Replicas()
	snap := Snapshot{Source: "replicas discovered"}
	if s.discoveryClient == nil {
		snap.Source = "the kubeconfig's server"
	}
	snap.Believed, snap.BelievedFrom = s.identity.count(time.Now())
	if s.isBalanced(len(replicas), snap.Believed) {
		snap.Source = balancedSource + strings.Join(replicas, ", ")
		for _, address := range replicas {
			snap.Replicas = append(snap.Replicas, s.scrapeBalanced(ctx, address, snap.Believed)...)
		}
		return snap
	}
	snap.Replicas = make([]ReplicaScrape, len(replicas))
	var wg sync.WaitGroup
	for i, replica := range replicas {
		wg.Go(func() { snap.Replicas[i] = s.ScrapeReplica(ctx, replica) })
	}
	wg.Wait()
	return snap
}

// balancedSource begins the Source of a snapshot read through balanced addresses.
const balancedSource = "balanced address "

// isBalanced says whether the addresses are balancers: so configured, or (auto) fewer addresses
// than live API servers.
func (s *Scraper) isBalanced(addresses, believed int) bool {
	switch s.opts.Endpoint {
	case EndpointBalanced:
		return true
	case EndpointReplicas:
		return false
	}
	return believed > addresses
}

// ScrapeReplica reads and parses one replica's /metrics.
func (s *Scraper) ScrapeReplica(ctx context.Context, replica string) ReplicaScrape {
	return s.scrape(ctx, s.client, replica)
}

func (s *Scraper) scrape(ctx context.Context, client *http.Client, replica string) ReplicaScrape {
	began := time.Now()
	out := ReplicaScrape{Replica: replica}
	body, contentType, err := s.fetch(ctx, client, replica)
	out.Taken, out.Duration, out.Bytes = time.Now(), time.Since(began), int64(len(body))
	if err == nil {
		out.Families, err = ParseMetrics(body, contentType)
	}
	if err != nil {
		out.Err = fmt.Errorf("replica %s: %w", replica, err)
	}
	return out
}

func (s *Scraper) fetch(ctx context.Context, client *http.Client, replica string) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	target := s.scheme + "://" + replica + s.basePath + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, "", fmt.Errorf("request %s: %w", target, err)
	}
	req.Header.Set("Accept", acceptHeader)
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, "", fmt.Errorf("unreachable: GET %s timed out after %s", target, s.opts.Timeout)
		}
		var urlErr *url.Error // it would repeat the method and URL
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return nil, "", fmt.Errorf("unreachable: GET %s: %w", target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		hint := ""
		if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
			hint = " (the identity needs get on nonResourceURLs /metrics: see deploy/observe/clusterrole.yaml)"
		}
		return nil, "", fmt.Errorf("GET %s answered %s%s: %s", target, resp.Status, hint, strings.TrimSpace(string(snippet)))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.opts.MaxBytes+1))
	if err != nil {
		return body, "", fmt.Errorf("truncated response from GET %s after %d bytes: %w", target, len(body), err)
	}
	if int64(len(body)) > s.opts.MaxBytes {
		return body, "", fmt.Errorf("GET %s: body larger than %d bytes", target, s.opts.MaxBytes)
	}
	return body, resp.Header.Get("Content-Type"), nil
}
