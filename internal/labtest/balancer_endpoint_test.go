package labtest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/bulkhead-dev/bulkhead/internal/labtest"
)

// A managed control plane (EKS, GKE, AKS) shows its replicas as one load-balanced address:
// the lab's --endpoint balancer must look the same to bulkhead's discovery, and its /metrics,
// scraped through that address one connection per request, must come from every replica.
func TestBalancedEndpointHidesTheReplicasBehindOneAddress(t *testing.T) {
	const goAway = 0.01
	lab, err := labtest.Start(labtest.Options{Nodes: 5, PodsPerNode: 2, Services: 2, APIServers: haReplicas,
		Endpoint: labtest.EndpointBalancer, GoAwayChance: goAway})
	if err != nil {
		t.Fatalf("the lab with a balanced endpoint did not start: %v", err)
	}
	closed := false
	defer func() {
		if !closed {
			lab.Close()
		}
	}()
	ctx := context.Background()
	st, err := lab.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Endpoint != labtest.EndpointBalancer || st.GoAwayChance != goAway || st.Network == nil || st.Network.BalancedAddress == "" {
		t.Fatalf("status: endpoint %q, goaway chance %v, network %+v; want %q, %v and a balanced address",
			st.Endpoint, st.GoAwayChance, st.Network, labtest.EndpointBalancer, goAway)
	}
	balanced, err := netip.ParseAddrPort(st.Network.BalancedAddress)
	if err != nil {
		t.Fatalf("balanced address %q: %v", st.Network.BalancedAddress, err)
	}
	subnet := netip.MustParsePrefix(st.Network.Subnet)
	if balanced.Addr().IsLoopback() || !subnet.Contains(balanced.Addr()) {
		t.Errorf("balanced address %s: want one of the lab's %s, not loopback", balanced, subnet)
	}
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if st.Network.BalancerNamespace == "" || st.Network.BalancerNamespace == own {
		t.Errorf("the balancer listens in network namespace %q; want one of the lab's, not this machine's (%s)", st.Network.BalancerNamespace, own)
	}

	for _, r := range st.Replicas {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", r.PID))
		if err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		if flag := fmt.Sprintf("--goaway-chance=%g", goAway); !slices.Contains(strings.Split(string(cmdline), "\x00"), flag) {
			t.Errorf("%s runs without %s", r.Name, flag)
		}
	}

	t.Run("the kubernetes EndpointSlice lists the balanced address alone", func(t *testing.T) {
		slice, err := lab.Client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, e := range slice.Endpoints {
			listed = append(listed, e.Addresses...)
		}
		if want := []string{balanced.Addr().String()}; !slices.Equal(listed, want) {
			t.Errorf("EndpointSlice default/kubernetes lists %v, want %v", listed, want)
		}
		if len(slice.Ports) != 1 || slice.Ports[0].Port == nil || *slice.Ports[0].Port != int32(balanced.Port()) {
			t.Errorf("EndpointSlice default/kubernetes ports %v, want %d", slice.Ports, balanced.Port())
		}
	})

	t.Run("this machine routes to the balanced address, not to a replica", func(t *testing.T) {
		// Read the routes rather than dial a replica: a packet to it would leave by the default route.
		routed := labRoutes(t, subnet)
		if want := []netip.Prefix{netip.PrefixFrom(balanced.Addr(), 32)}; !slices.Equal(routed, want) {
			t.Errorf("routes into the lab's %s: %v, want %v alone (replicas at %v)", subnet, routed, want, replicaAddresses(st))
		}
	})

	t.Run("new connections to the balanced address reach every replica's /metrics", func(t *testing.T) {
		testMetricsThroughTheBalancedAddress(t, lab, balanced)
	})

	// SIGTERM: the balancer's link and namespace go with the replicas'.
	closed = true
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.InterfaceByName(st.Network.BalancerLink); err == nil {
		t.Errorf("the balancer's link %s is still there after SIGTERM", st.Network.BalancerLink)
	}
	namespaces := []string{st.Network.BalancerNamespace}
	for _, r := range st.Replicas {
		namespaces = append(namespaces, r.Namespace)
	}
	for _, ns := range namespaces {
		if holders := namespaceHolders(t, ns); len(holders) > 0 {
			t.Errorf("network namespace %s is still held after SIGTERM by %v", ns, holders)
		}
	}
}

// testMetricsThroughTheBalancedAddress scrapes /metrics as controlplane.NewScraper does (the
// kubeconfig's credentials, its server's name pinned for TLS) at the balanced address, a new
// connection per request, until it has reached every replica. The balancer's own record of each
// connection (ctl balancer) says which replica answered, so the test can report what in /metrics
// tells replicas apart: process_start_time_seconds has a resolution of 10 ms (clock ticks), and
// replicas started together may share it.
func testMetricsThroughTheBalancedAddress(t *testing.T, lab *labtest.Lab, balanced netip.AddrPort) {
	cfg := rest.CopyConfig(lab.Config)
	server, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSClientConfig.ServerName = server.Hostname()
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var reached int
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true,
		// Each connection stays open while the balancer is asked which replica it reached.
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, address)
			if err != nil {
				return nil, err
			}
			reached, err = replicaOf(ctx, lab, conn.LocalAddr().String())
			if err != nil {
				conn.Close()
				return nil, err
			}
			return conn, nil
		}}
	client := &http.Client{Timeout: 10 * time.Second, Transport: transport}
	metricsURL := "https://" + balanced.String() + "/metrics"

	byReplica := map[int]map[string]*dto.MetricFamily{}
	deadline := time.Now().Add(time.Minute)
	requests := 0
	for len(byReplica) < haReplicas && time.Now().Before(deadline) {
		requests++
		families, err := scrape(client, metricsURL)
		if err != nil {
			t.Fatalf("scrape %d of %s: %v", requests, metricsURL, err)
		}
		byReplica[reached] = families
	}
	if len(byReplica) != haReplicas {
		t.Fatalf("%d new connections to %s reached replicas %v, want all %d", requests, metricsURL, slices.Sorted(maps.Keys(byReplica)), haReplicas)
	}
	replicas := make([]map[string]*dto.MetricFamily, haReplicas)
	starts := map[float64][]int{}
	for i := range replicas {
		replicas[i] = byReplica[i]
		start := replicas[i]["process_start_time_seconds"].GetMetric()
		if len(start) != 1 {
			t.Fatalf("replica %d: process_start_time_seconds has %d series, want 1", i, len(start))
		}
		starts[start[0].GetGauge().GetValue()] = append(starts[start[0].GetGauge().GetValue()], i)
	}
	t.Logf("%d new connections to %s reached every replica; process_start_time_seconds → replicas: %v", requests, metricsURL, starts)
	if len(starts) < haReplicas {
		t.Logf("process_start_time_seconds does not tell the replicas apart: they started within one clock tick")
	}
	logPerProcessSeries(t, replicas)
}

// replicaOf polls the balancer until it lists the connection from client and returns the
// replica it reached.
func replicaOf(ctx context.Context, lab *labtest.Lab, client string) (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		conns, err := lab.Connections(ctx)
		if err != nil {
			return 0, err
		}
		for _, c := range conns {
			if c.Client == client {
				return c.Replica, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the balancer does not list the connection from %s after 10s", client)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func scrape(client *http.Client, metricsURL string) (map[string]*dto.MetricFamily, error) {
	resp, err := client.Get(metricsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s: %s", resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return families, nil
}

// logPerProcessSeries logs what could tell one kube-apiserver process from another on its
// /metrics: any series with an apiserver_id_hash label or the replica's hostname
// (kube-apiserver-<i>) in a label, the families whose series (names and labels) some replicas
// have and others not, and every replica's process_* and *_info series.
func logPerProcessSeries(t *testing.T, replicas []map[string]*dto.MetricFamily) {
	series := make([]map[string]bool, len(replicas))
	all := map[string]int{}
	for i, families := range replicas {
		series[i] = map[string]bool{}
		for name, f := range families {
			for _, m := range f.GetMetric() {
				key := seriesKey(name, m)
				series[i][key] = true
				all[key]++
				if strings.Contains(key, "apiserver_id_hash") || strings.Contains(key, "kube-apiserver-") {
					t.Logf("replica %d identifies itself: %s", i, key)
				}
			}
		}
	}
	differing := map[string]int{}
	for key, n := range all {
		if n < len(replicas) {
			differing[key[:strings.Index(key, "{")]]++
		}
	}
	var families []string
	for name, n := range differing {
		families = append(families, fmt.Sprintf("%s (%d)", name, n))
	}
	sort.Strings(families)
	t.Logf("families with series on some replicas only (the requests each served): %s", strings.Join(families, ", "))
	for i, families := range replicas {
		var gauges []string
		for name, f := range families {
			if strings.HasPrefix(name, "process_") || strings.HasSuffix(name, "_info") {
				for _, m := range f.GetMetric() {
					gauges = append(gauges, fmt.Sprintf("%s=%g", seriesKey(name, m), m.GetGauge().GetValue()+m.GetCounter().GetValue()))
				}
			}
		}
		sort.Strings(gauges)
		t.Logf("replica %d: %s", i, strings.Join(gauges, " "))
	}
}

func seriesKey(name string, m *dto.Metric) string {
	labels := make([]string, 0, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	return name + "{" + strings.Join(labels, ",") + "}"
}

// labRoutes lists the destinations of this network namespace's IPv4 routes that lie in
// subnet, read from /proc/net/route (no packet sent).
func labRoutes(t *testing.T, subnet netip.Prefix) []netip.Prefix {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []netip.Prefix
	lines := bufio.NewScanner(f)
	lines.Scan() // header
	for lines.Scan() {
		fields := strings.Fields(lines.Text())
		if len(fields) < 8 {
			continue
		}
		dst, mask := hexAddr(t, fields[1]), hexAddr(t, fields[7])
		bits, _ := net.IPMask(mask.AsSlice()).Size()
		p := netip.PrefixFrom(dst, bits)
		if bits > 0 && subnet.Overlaps(p) {
			out = append(out, p)
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// hexAddr decodes an address of /proc/net/route: 8 hex digits, in the kernel's (little-endian) order.
func hexAddr(t *testing.T, s string) netip.Addr {
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != 4 {
		t.Fatalf("/proc/net/route address %q: %v", s, err)
	}
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], binary.LittleEndian.Uint32(raw))
	return netip.AddrFrom4(a)
}

func replicaAddresses(st labtest.Status) []string {
	var out []string
	for _, r := range st.Replicas {
		out = append(out, r.Address)
	}
	return out
}
