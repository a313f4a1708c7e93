package server

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/bulkhead-dev/bulkhead/dns/index"
	"github.com/bulkhead-dev/bulkhead/dns/internal/fixture"
)

func packQuery(b *testing.B, name string, qtype uint16) []byte {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.SetEdns0(1232, false)
	wire, err := q.Pack()
	if err != nil {
		b.Fatal(err)
	}
	return wire
}

// BenchmarkServeClusterNameHotPath is the per-query work without sockets: parse, look up,
// copy and patch.
func BenchmarkServeClusterNameHotPath(b *testing.B) {
	ts := startServer(b, nil)
	msg := packQuery(b, "Web.Default.svc.cluster.local.", dns.TypeA)
	out := make([]byte, 0, 65535)
	var q query
	b.ReportAllocs()
	for b.Loop() {
		if _, v, _ := ts.answer(&q, msg, out, true); v != verdictAnswer {
			b.Fatal("not answered")
		}
	}
}

// BenchmarkServeClusterNameNXDOMAIN is the hot path for a missing cluster name (search-path
// expansions make these the most common cluster queries).
func BenchmarkServeClusterNameNXDOMAIN(b *testing.B) {
	ts := startServer(b, nil)
	msg := packQuery(b, "web.default.svc.cluster.local.svc.cluster.local.", dns.TypeA)
	out := make([]byte, 0, 65535)
	var q query
	b.ReportAllocs()
	for b.Loop() {
		ts.answer(&q, msg, out, true)
	}
}

// BenchmarkServeClusterNameUDP is a full round trip over loopback UDP, one query in flight per
// client goroutine; it reports server+client CPU per query, not the server alone.
func BenchmarkServeClusterNameUDP(b *testing.B) {
	ts := startServer(b, nil)
	msg := packQuery(b, "web.default.svc.cluster.local.", dns.TypeA)
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("udp", ts.addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		buf := make([]byte, 1500)
		for pb.Next() {
			if _, err := conn.Write(msg); err != nil {
				b.Error(err)
				return
			}
			conn.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := conn.Read(buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkIndexBuildAtScale builds the index of 10k services (every 5th headless) with 50k
// endpoints and reports its size in names.
func BenchmarkIndexBuildAtScale(b *testing.B) {
	services, slices := scaleCluster(10000, 5)
	b.ReportAllocs()
	var ix *index.Index
	for b.Loop() {
		var err error
		if ix, err = index.Build(index.Options{Zone: zone, TTL: 5}, services, slices); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(ix.Names()), "names")
	// What one index keeps alive: the heap with it minus the heap without it.
	var with, without runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&with)
	runtime.KeepAlive(ix)
	ix = nil
	runtime.GC()
	runtime.ReadMemStats(&without)
	b.ReportMetric(float64(with.HeapAlloc-without.HeapAlloc)/(1<<20), "index-MiB")
}

func scaleCluster(n, endpointsPerService int) ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	var services []*corev1.Service
	var slices []*discoveryv1.EndpointSlice
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		if i%5 == 0 {
			services = append(services, fixture.HeadlessService("lab", name, http))
		} else {
			services = append(services, fixture.ClusterIPService("lab", name, []string{fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)}, http))
		}
		var eps []fixture.Endpoint
		for j := range endpointsPerService {
			k := i*endpointsPerService + j
			eps = append(eps, fixture.Endpoint{IP: fmt.Sprintf("10.%d.%d.%d", 1+k/62500, k/250%250, k%250+1)})
		}
		slices = append(slices, fixture.Slice("lab", name, name+"-x", discoveryv1.AddressTypeIPv4, []fixture.Port{http}, eps...))
	}
	return services, slices
}
