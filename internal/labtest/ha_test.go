package labtest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/bulkhead-dev/bulkhead/internal/labtest"
)

const haReplicas = 3

// One lab with three apiservers for every HA case, with a memory limit so that each replica
// gets a cgroup of its own; the last case stops it and checks that nothing is left.
func TestThreeAPIServersBehindTheBalancer(t *testing.T) {
	ha, err := labtest.Start(labtest.Options{Nodes: 10, PodsPerNode: 2, Services: 4, APIServers: haReplicas,
		ExtraArgs: []string{"--apiserver-memory-limit", "1Gi"}})
	if err != nil {
		t.Fatalf("the 3-apiserver lab did not start: %v", err)
	}
	closed := false
	defer func() {
		if !closed {
			ha.Close()
		}
	}()
	st, err := ha.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Replicas) != haReplicas || st.Network == nil {
		t.Fatalf("status lists %d replicas and network %+v, want %d replicas in a network of the lab's", len(st.Replicas), st.Network, haReplicas)
	}
	// Each replica has its memory limit in a cgroup of its own.
	if cgroups := labCgroups(t, st.SupervisorPID); len(cgroups) < haReplicas {
		t.Fatalf("the lab's cgroups are %v, want one per replica at least", cgroups)
	}
	namespaces := map[string]bool{}
	for _, r := range st.Replicas {
		if r.Namespace == "" || r.Link == "" || namespaces[r.Namespace] {
			t.Fatalf("replica %s: network namespace %q, link %q; want one of its own", r.Name, r.Namespace, r.Link)
		}
		namespaces[r.Namespace] = true
	}

	t.Run("the kubernetes EndpointSlice lists every replica at an address of the lab's network", func(t *testing.T) {
		testReplicasAreDiscoverable(t, ha, st)
	})
	t.Run("every replica serves its own /metrics and APF and has its own identity", func(t *testing.T) {
		testEveryReplicaServesItsOwnMetrics(t, ha, st)
	})
	t.Run("the balancer spreads new connections over the replicas", func(t *testing.T) {
		testBalancerSpreadsConnections(t, ha)
	})
	t.Run("a stopped replica keeps every object and the other two serve", func(t *testing.T) {
		testOneReplicaStopsAndStarts(t, ha, st)
	})

	// SIGTERM: no process, link, namespace, cgroup or listener of the lab is left.
	closed = true
	if err := ha.Close(); err != nil {
		t.Fatal(err)
	}
	pids := []int{st.SupervisorPID}
	for _, r := range st.Replicas {
		pids = append(pids, r.PID)
	}
	for _, pid := range st.ComponentPIDs {
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		if pid == 0 || syscall.Kill(pid, 0) == nil {
			t.Errorf("process %d is still alive after SIGTERM (status %+v)", pid, st)
		}
	}
	for _, r := range st.Replicas {
		if _, err := net.InterfaceByName(r.Link); err == nil {
			t.Errorf("link %s of %s is still there after SIGTERM", r.Link, r.Name)
		}
		if holders := namespaceHolders(t, r.Namespace); len(holders) > 0 {
			t.Errorf("network namespace %s of %s is still held after SIGTERM by %v", r.Namespace, r.Name, holders)
		}
	}
	if left := labCgroups(t, st.SupervisorPID); len(left) > 0 {
		t.Errorf("cgroups left after SIGTERM: %v", left)
	}
	// Only the balancer is dialled: with the lab's links gone, a replica's address would be
	// routed out of the machine.
	if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(st.Server, "https://"), time.Second); err == nil {
		conn.Close()
		t.Errorf("the balancer %s still accepts connections after SIGTERM", st.Server)
	}
}

func testReplicasAreDiscoverable(t *testing.T, ha *labtest.Lab, st labtest.Status) {
	ctx := context.Background()
	subnet, err := netip.ParsePrefix(st.Network.Subnet)
	if err != nil {
		t.Fatal(err)
	}
	slice, err := ha.Client.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if slice.Labels[discoveryv1.LabelServiceName] != "kubernetes" || len(slice.Ports) != 1 || slice.Ports[0].Port == nil {
		t.Fatalf("EndpointSlice default/kubernetes: labels %v, ports %v; want the kubernetes Service's with one port", slice.Labels, slice.Ports)
	}
	var listed []string
	for _, e := range slice.Endpoints {
		for _, a := range e.Addresses {
			listed = append(listed, net.JoinHostPort(a, strconv.Itoa(int(*slice.Ports[0].Port))))
		}
	}
	var replicas []string
	for _, r := range st.Replicas {
		replicas = append(replicas, r.Address)
		ip := netip.MustParseAddrPort(r.Address).Addr()
		if !subnet.Contains(ip) || ip.IsLoopback() {
			t.Errorf("replica %s at %s: want an address in the lab's %s", r.Name, r.Address, subnet)
		}
		if where := replicaAddressOutsideItsNamespace(t, r, ip); where != "" {
			t.Errorf("replica %s at %s: %s", r.Name, ip, where)
		}
	}
	slices.Sort(listed)
	slices.Sort(replicas)
	if !slices.Equal(listed, replicas) {
		t.Errorf("EndpointSlice lists %v, the lab runs %v", listed, replicas)
	}
	// Each replica answers at its listed address with a certificate that names that address.
	for _, r := range st.Replicas {
		host, _, _ := net.SplitHostPort(r.Address)
		cfg := ha.ReplicaConfig(r)
		tlsConfig, err := rest.TLSConfigFor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", r.Address, tlsConfig)
		if err != nil {
			t.Errorf("TLS to %s at its listed address: %v", r.Name, err)
			continue
		}
		names := conn.ConnectionState().PeerCertificates[0].IPAddresses
		conn.Close()
		if !slices.ContainsFunc(names, func(ip net.IP) bool { return ip.String() == host }) {
			t.Errorf("%s's certificate names %v, not its own address %s", r.Name, names, host)
		}
	}
}

func testEveryReplicaServesItsOwnMetrics(t *testing.T, ha *labtest.Lab, st labtest.Status) {
	ctx := context.Background()
	clients := make([]kubernetes.Interface, len(st.Replicas))
	for i, r := range st.Replicas {
		c, err := kubernetes.NewForConfig(ha.ReplicaConfig(r))
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	// metrics reads one replica's /metrics: its APF seats, and the namespace GETs it served.
	metrics := func(i int) (seats, namespaceGets float64) {
		raw, err := clients[i].CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		if err != nil {
			t.Fatalf("%s /metrics: %v", st.Replicas[i].Name, err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s /metrics: %v", st.Replicas[i].Name, err)
		}
		for _, m := range families["apiserver_flowcontrol_nominal_limit_seats"].GetMetric() {
			seats += m.GetGauge().GetValue()
		}
		for _, m := range families["apiserver_request_total"].GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["verb"] == "GET" && labels["resource"] == "namespaces" {
				namespaceGets += m.GetCounter().GetValue()
			}
		}
		return seats, namespaceGets
	}
	before := make([]float64, len(clients))
	for i, r := range st.Replicas {
		seats, gets := metrics(i)
		// Each replica has all of --max-requests-inflight + --max-mutating-requests-inflight
		// (levels' shares round up, so a few more).
		if seats < 600 || seats > 620 {
			t.Errorf("%s: APF nominal seats sum to %.0f, want its own 600", r.Name, seats)
		}
		before[i] = gets
	}
	// Requests sent to one replica show on its /metrics alone.
	const gets = 20
	for range gets {
		if _, err := clients[0].CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range st.Replicas {
		_, after := metrics(i)
		if delta := after - before[i]; (i == 0) != (delta >= gets) {
			t.Errorf("%s counted %.0f namespace GETs while %d went to %s", r.Name, delta, gets, st.Replicas[0].Name)
		}
	}
	// Each replica holds an identity lease of its own, named after its own hostname.
	leases, err := ha.Client.CoordinationV1().Leases("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "apiserver.kubernetes.io/identity=kube-apiserver"})
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, l := range leases.Items {
		hosts = append(hosts, l.Labels["kubernetes.io/hostname"])
	}
	slices.Sort(hosts)
	if want := []string{"kube-apiserver-0", "kube-apiserver-1", "kube-apiserver-2"}; !slices.Equal(hosts, want) {
		t.Errorf("apiserver identity leases are held by hosts %v, want %v", hosts, want)
	}
}

func testBalancerSpreadsConnections(t *testing.T, ha *labtest.Lab) {
	ctx := context.Background()
	const conns = 3 * haReplicas
	var clients []*rest.Config
	for range conns {
		cfg := rest.CopyConfig(ha.Config)
		// A Proxy function makes client-go give the config a transport, so a connection, of its own.
		cfg.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
		clients = append(clients, cfg)
	}
	for _, cfg := range clients {
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	used, err := ha.ConnectionsOf(ctx, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	perReplica := map[int]int{}
	for _, c := range used {
		perReplica[c.Replica]++
	}
	total := 0
	for _, n := range perReplica {
		total += n
	}
	// Round robin over three ready replicas: other clients (the lab's own controllers) may
	// connect meanwhile, so each replica gets at least one of every three, not exactly three.
	if total < conns || len(perReplica) != haReplicas {
		t.Errorf("this test's %d+ connections reached replicas %v, want all %d replicas", conns, perReplica, haReplicas)
	}
	t.Logf("this test's connections per replica: %v", perReplica)
}

func testOneReplicaStopsAndStarts(t *testing.T, ha *labtest.Lab, st labtest.Status) {
	ctx := context.Background()
	if _, err := ha.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ha-fault"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before, err := ha.Client.CoreV1().ConfigMaps("ha-fault").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "survivor"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const stopped = 1
	if err := ha.StopReplica(ctx, stopped); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			_ = ha.StartReplica(ctx, stopped)
		}
	}()
	down, err := ha.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range down.Replicas {
		wantUp := r.Index != stopped
		if r.Up != wantUp || r.Stopped == wantUp || (r.PID != 0) != wantUp {
			t.Errorf("replica %s after stopping replica %d: up %v, stopped %v, pid %d", r.Name, stopped, r.Up, r.Stopped, r.PID)
		}
	}
	if !down.APIServerUp {
		t.Error("the API is down through the balancer with two of three replicas up")
	}
	if conn, err := net.DialTimeout("tcp", st.Replicas[stopped].Address, time.Second); err == nil {
		conn.Close()
		t.Errorf("stopped replica %s still accepts connections", st.Replicas[stopped].Address)
	}
	// Every new connection through the balancer reaches a serving replica.
	for i := range 2 * haReplicas {
		cfg := rest.CopyConfig(ha.Config)
		cfg.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.CoreV1().ConfigMaps("ha-fault").Get(ctx, "survivor", metav1.GetOptions{})
		if err != nil || got.UID != before.UID {
			t.Errorf("connection %d through the balancer with replica %d stopped: %v", i, stopped, err)
		}
	}
	slice, err := ha.Client.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || len(slice.Endpoints) != haReplicas {
		t.Errorf("EndpointSlice default/kubernetes with one replica stopped: %v (err %v), want all %d still listed", slice, err, haReplicas)
	}

	if err := ha.StartReplica(ctx, stopped); err != nil {
		t.Fatal(err)
	}
	restarted = true
	direct, err := kubernetes.NewForConfig(ha.ReplicaConfig(st.Replicas[stopped]))
	if err != nil {
		t.Fatal(err)
	}
	after, err := direct.CoreV1().ConfigMaps("ha-fault").Get(ctx, "survivor", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the restarted replica: %v", err)
	}
	if after.UID != before.UID || after.Data["k"] != "v" {
		t.Fatalf("object changed across the restart: before %v/%v, after %v/%v", before.UID, before.Data, after.UID, after.Data)
	}
	nodes, err := direct.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 10 {
		t.Fatalf("the restarted replica lists %d nodes, err %v; want 10", len(nodes.Items), err)
	}
	back, err := ha.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range back.Replicas {
		if !r.Up || r.Stopped {
			t.Errorf("replica %s after start: up %v, stopped %v", r.Name, r.Up, r.Stopped)
		}
	}
}

// replicaAddressOutsideItsNamespace says what puts the replica's address outside the network
// namespace the lab made for it, or "" when nothing does: the replica's process must run in that
// namespace, not in this test's, and the link the lab left in this namespace must not carry the
// address. Only the lab's own process and link are read, never the machine's interfaces.
func replicaAddressOutsideItsNamespace(t *testing.T, r labtest.ReplicaStatus, ip netip.Addr) string {
	t.Helper()
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", r.PID))
	if err != nil {
		return fmt.Sprintf("its process %d: %v", r.PID, err)
	}
	if in == own {
		return fmt.Sprintf("its process %d runs in this test's network namespace %s", r.PID, own)
	}
	if in != r.Namespace {
		return fmt.Sprintf("its process %d runs in %s, the status says %s", r.PID, in, r.Namespace)
	}
	link, err := net.InterfaceByName(r.Link)
	if err != nil {
		return fmt.Sprintf("the lab's link %s: %v", r.Link, err)
	}
	addrs, err := link.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip.AsSlice()) {
			return fmt.Sprintf("the lab's link %s in this test's namespace carries it", r.Link)
		}
	}
	return ""
}

// labCgroups lists the cgroups the lab with supervisor pid made (bulkhead-lab-<pid>-…),
// wherever they are below /sys/fs/cgroup.
func labCgroups(t *testing.T, pid int) []string {
	t.Helper()
	prefix := fmt.Sprintf("bulkhead-lab-%d-", pid)
	var out []string
	err := filepath.WalkDir("/sys/fs/cgroup", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), prefix) {
			out = append(out, path)
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// namespaceHolders lists the processes in, or holding a handle of, the namespace net:[inode].
func namespaceHolders(t *testing.T, namespace string) []string {
	t.Helper()
	procs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		if target, err := os.Readlink(filepath.Join("/proc", p.Name(), "ns", "net")); err == nil && target == namespace {
			out = append(out, "process "+p.Name())
		}
		fds, err := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if err == nil && target == namespace {
				out = append(out, fmt.Sprintf("fd %s of process %s", fd.Name(), p.Name()))
			}
		}
	}
	return out
}
