package server

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/bulkhead-dev/bulkhead/dns/index"
	"github.com/bulkhead-dev/bulkhead/dns/internal/fixture"
)

const zone = "cluster.local."

var http = fixture.Port{Name: "http", Port: 80}

// cluster is the data most tests serve.
func cluster() ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	var many []fixture.Endpoint
	for i := range 60 {
		many = append(many, fixture.Endpoint{IP: fmt.Sprintf("10.9.%d.%d", i/200, i%200+1)})
	}
	return []*corev1.Service{
			fixture.ClusterIPService("default", "web", []string{"10.96.0.10", "fd00::10"}, http, fixture.Port{Port: 8080}),
			fixture.HeadlessService("db", "pg", fixture.Port{Name: "sql", Port: 5432}),
			fixture.HeadlessService("db", "empty"),
			fixture.HeadlessService("db", "big"),
			fixture.ExternalNameService("default", "ext", "Example.COM"),
		}, []*discoveryv1.EndpointSlice{
			fixture.Slice("db", "pg", "pg-1", discoveryv1.AddressTypeIPv4, []fixture.Port{{Name: "sql", Port: 5432}},
				fixture.Endpoint{IP: "10.1.0.5", Hostname: "pg-0"},
				fixture.Endpoint{IP: "10.1.0.6"},
				fixture.Endpoint{IP: "10.1.0.7", NotReady: true}),
			fixture.Slice("db", "empty", "empty-1", discoveryv1.AddressTypeIPv4, nil,
				fixture.Endpoint{IP: "10.1.0.9", NotReady: true}),
			fixture.Slice("db", "big", "big-1", discoveryv1.AddressTypeIPv4, nil, many...),
		}
}

type testServer struct {
	*Server
	addr string
}

// startServer serves idx on 127.0.0.1, UDP and TCP on the same port.
func startServer(t testing.TB, upstream Resolver) *testServer {
	t.Helper()
	services, slices := cluster()
	ix, err := index.Build(index.Options{Zone: zone, TTL: 5}, services, slices)
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, upstream)
	if err := srv.SetIndex(ix); err != nil {
		t.Fatal(err)
	}
	return serve(t, srv)
}

func newServer(t testing.TB, upstream Resolver) *Server {
	t.Helper()
	srv, err := New(Config{Zone: zone, Upstream: upstream, Metrics: NewMetrics(prometheus.NewRegistry()), MaxTCPConnections: 8})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func serve(t testing.TB, srv *Server) *testServer {
	t.Helper()
	// The TCP port must equal the UDP port the kernel picked; another process may hold it.
	var udp *net.UDPConn
	var tcp net.Listener
	for attempt := 0; tcp == nil; attempt++ {
		var err error
		if udp, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		if tcp, err = net.Listen("tcp", udp.LocalAddr().String()); err != nil {
			udp.Close()
			if attempt == 10 {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- srv.ServeUDP(ctx, udp) }()
	go func() { done <- srv.ServeTCP(ctx, tcp) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		}
	})
	return &testServer{Server: srv, addr: udp.LocalAddr().String()}
}

func (ts *testServer) exchange(t testing.TB, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	resp, _, err := c.Exchange(m, ts.addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], network, err)
	}
	if resp.Id != m.Id {
		t.Fatalf("answer ID %d, query ID %d", resp.Id, m.Id)
	}
	return resp
}

func (ts *testServer) ask(t testing.TB, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return ts.exchange(t, network, m)
}

// records renders a section without TTL differences hiding anything, sorted as served.
func records(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	return out
}

func expectRecords(t *testing.T, got []dns.RR, want ...string) {
	t.Helper()
	have := records(got)
	if len(have) != len(want) {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(have, "\n"), strings.Join(want, "\n"))
	}
	seen := map[string]bool{}
	for _, h := range have {
		seen[h] = true
	}
	for _, w := range want {
		if !seen[w] {
			t.Fatalf("missing %q in\n%s", w, strings.Join(have, "\n"))
		}
	}
}

func expectRcode(t *testing.T, m *dns.Msg, rcode int) {
	t.Helper()
	if m.Rcode != rcode {
		t.Fatalf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[rcode])
	}
}

var networks = []string{"udp", "tcp"}

func TestClusterIPServiceAnswersAAndAAAA(t *testing.T) {
	ts := startServer(t, nil)
	for _, network := range networks {
		m := ts.ask(t, network, "web.default.svc.cluster.local.", dns.TypeA)
		expectRcode(t, m, dns.RcodeSuccess)
		if !m.Authoritative || m.RecursionAvailable {
			t.Errorf("flags aa=%v ra=%v, want aa and no ra like CoreDNS", m.Authoritative, m.RecursionAvailable)
		}
		expectRecords(t, m.Answer, "web.default.svc.cluster.local. 5 IN A 10.96.0.10")
		m = ts.ask(t, network, "web.default.svc.cluster.local.", dns.TypeAAAA)
		expectRecords(t, m.Answer, "web.default.svc.cluster.local. 5 IN AAAA fd00::10")
	}
}

func TestNamesAreCaseInsensitiveAndKeepTheQueryCase(t *testing.T) {
	ts := startServer(t, nil)
	m := ts.ask(t, "udp", "WeB.DeFault.SVC.cluster.LOCAL.", dns.TypeA)
	expectRcode(t, m, dns.RcodeSuccess)
	if m.Question[0].Name != "WeB.DeFault.SVC.cluster.LOCAL." {
		t.Fatalf("question %q lost the query's case", m.Question[0].Name)
	}
	if len(m.Answer) != 1 || !strings.EqualFold(m.Answer[0].Header().Name, "web.default.svc.cluster.local.") {
		t.Fatalf("answer %v", m.Answer)
	}
}

func TestHeadlessServiceAnswersReadyEndpoints(t *testing.T) {
	ts := startServer(t, nil)
	for _, network := range networks {
		m := ts.ask(t, network, "pg.db.svc.cluster.local.", dns.TypeA)
		expectRecords(t, m.Answer,
			"pg.db.svc.cluster.local. 5 IN A 10.1.0.5",
			"pg.db.svc.cluster.local. 5 IN A 10.1.0.6")
	}
}

func TestHeadlessServiceWithoutReadyEndpointsIsNXDOMAIN(t *testing.T) {
	ts := startServer(t, nil)
	m := ts.ask(t, "udp", "empty.db.svc.cluster.local.", dns.TypeA)
	expectRcode(t, m, dns.RcodeNameError)
}

func TestEndpointsAreNamedByHostnameOrDashedIP(t *testing.T) {
	ts := startServer(t, nil)
	m := ts.ask(t, "udp", "pg-0.pg.db.svc.cluster.local.", dns.TypeA)
	expectRecords(t, m.Answer, "pg-0.pg.db.svc.cluster.local. 5 IN A 10.1.0.5")
	m = ts.ask(t, "udp", "10-1-0-6.pg.db.svc.cluster.local.", dns.TypeA)
	expectRecords(t, m.Answer, "10-1-0-6.pg.db.svc.cluster.local. 5 IN A 10.1.0.6")
	m = ts.ask(t, "udp", "10-1-0-7.pg.db.svc.cluster.local.", dns.TypeA)
	expectRcode(t, m, dns.RcodeNameError)
}

func TestNamedPortHasSRVWithAddressesInAdditional(t *testing.T) {
	ts := startServer(t, nil)
	m := ts.ask(t, "udp", "_http._tcp.web.default.svc.cluster.local.", dns.TypeSRV)
	expectRecords(t, m.Answer, "_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local.")
	expectRecords(t, m.Extra,
		"web.default.svc.cluster.local. 5 IN A 10.96.0.10",
		"web.default.svc.cluster.local. 5 IN AAAA fd00::10")
	m = ts.ask(t, "tcp", "_sql._tcp.pg.db.svc.cluster.local.", dns.TypeSRV)
	expectRecords(t, m.Answer,
		"_sql._tcp.pg.db.svc.cluster.local. 5 IN SRV 0 50 5432 pg-0.pg.db.svc.cluster.local.",
		"_sql._tcp.pg.db.svc.cluster.local. 5 IN SRV 0 50 5432 10-1-0-6.pg.db.svc.cluster.local.")
	expectRecords(t, m.Extra,
		"pg-0.pg.db.svc.cluster.local. 5 IN A 10.1.0.5",
		"10-1-0-6.pg.db.svc.cluster.local. 5 IN A 10.1.0.6")
}

func TestSRVForServiceNameListsEveryPort(t *testing.T) {
	ts := startServer(t, nil)
	m := ts.ask(t, "udp", "web.default.svc.cluster.local.", dns.TypeSRV)
	expectRecords(t, m.Answer,
		"web.default.svc.cluster.local. 5 IN SRV 0 50 80 web.default.svc.cluster.local.",
		"web.default.svc.cluster.local. 5 IN SRV 0 50 8080 web.default.svc.cluster.local.")
}

func TestPTRForServiceAndEndpointIPs(t *testing.T) {
	ts := startServer(t, nil)
	m := ts.ask(t, "udp", "10.0.96.10.in-addr.arpa.", dns.TypePTR)
	expectRecords(t, m.Answer, "10.0.96.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local.")
	rev, _ := dns.ReverseAddr("fd00::10")
	m = ts.ask(t, "tcp", rev, dns.TypePTR)
	expectRecords(t, m.Answer, rev+" 5 IN PTR web.default.svc.cluster.local.")
	m = ts.ask(t, "udp", "5.0.1.10.in-addr.arpa.", dns.TypePTR)
	expectRecords(t, m.Answer, "5.0.1.10.in-addr.arpa. 5 IN PTR pg-0.pg.db.svc.cluster.local.")
}

func TestExternalNameAnswersCNAMEForEveryType(t *testing.T) {
	ts := startServer(t, nil)
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeTXT} {
		m := ts.ask(t, "udp", "ext.default.svc.cluster.local.", qtype)
		expectRcode(t, m, dns.RcodeSuccess)
		expectRecords(t, m.Answer, "ext.default.svc.cluster.local. 5 IN CNAME example.com.")
	}
}

func TestMissingClusterNameIsNXDOMAINWithSOA(t *testing.T) {
	ts := startServer(t, nil)
	for _, network := range networks {
		m := ts.ask(t, network, "nope.default.svc.cluster.local.", dns.TypeA)
		expectRcode(t, m, dns.RcodeNameError)
		if len(m.Answer) != 0 || len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Fatalf("want only an SOA in authority, got %v / %v", m.Answer, m.Ns)
		}
		if soa := m.Ns[0].(*dns.SOA); soa.Hdr.Name != zone || soa.Minttl != 5 || soa.Ns != "ns.dns."+zone {
			t.Fatalf("SOA %v", soa)
		}
	}
}

func TestExistingNameWithoutTheTypeIsNODATA(t *testing.T) {
	ts := startServer(t, nil)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"web.default.svc.cluster.local.", dns.TypeMX},
		{"web.default.svc.cluster.local.", dns.TypeANY},
		{"default.svc.cluster.local.", dns.TypeA},
		{"svc.cluster.local.", dns.TypeA},
		{"pod.cluster.local.", dns.TypeA},
	} {
		name := q.name
		m := ts.ask(t, "udp", name, q.qtype)
		expectRcode(t, m, dns.RcodeSuccess)
		if len(m.Answer) != 0 || len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Fatalf("%s: want NODATA with SOA, got %v / %v", name, m.Answer, m.Ns)
		}
	}
	// Like CoreDNS: no empty names below a service, no pod records.
	for _, name := range []string{"nons.svc.cluster.local.", "_tcp.web.default.svc.cluster.local.", "10-1-0-5.db.pod.cluster.local."} {
		expectRcode(t, ts.ask(t, "udp", name, dns.TypeA), dns.RcodeNameError)
	}
}

func TestUnknownTypeIsNODATA(t *testing.T) {
	ts := startServer(t, nil)
	m := ts.ask(t, "udp", "web.default.svc.cluster.local.", 65280)
	expectRcode(t, m, dns.RcodeSuccess)
	if len(m.Answer) != 0 {
		t.Fatalf("answer %v", m.Answer)
	}
}

func TestZoneApexAnswersSOAAndVersion(t *testing.T) {
	ts := startServer(t, nil)
	m := ts.ask(t, "udp", zone, dns.TypeSOA)
	if len(m.Answer) != 1 || m.Answer[0].Header().Rrtype != dns.TypeSOA {
		t.Fatalf("answer %v", m.Answer)
	}
	m = ts.ask(t, "udp", "dns-version."+zone, dns.TypeTXT)
	expectRecords(t, m.Answer, `dns-version.cluster.local. 28800 IN TXT "1.1.0"`)
}

func TestNameOutsideZoneIsRefusedWithoutUpstream(t *testing.T) {
	ts := startServer(t, nil)
	m := ts.ask(t, "udp", "example.com.", dns.TypeA)
	expectRcode(t, m, dns.RcodeRefused)
	m = ts.ask(t, "udp", "1.2.3.4.in-addr.arpa.", dns.TypePTR)
	expectRcode(t, m, dns.RcodeRefused)
}

func TestClusterNameBeforeAnyIndexIsSERVFAIL(t *testing.T) {
	ts := serve(t, newServer(t, nil))
	m := ts.ask(t, "udp", "web.default.svc.cluster.local.", dns.TypeA)
	expectRcode(t, m, dns.RcodeServerFailure)
}

func TestNewIndexIsServedByTheNextQuery(t *testing.T) {
	ts := startServer(t, nil)
	ix, err := index.Build(index.Options{Zone: zone, TTL: 5}, []*corev1.Service{
		fixture.ClusterIPService("default", "new", []string{"10.96.0.99"}),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.SetIndex(ix); err != nil {
		t.Fatal(err)
	}
	expectRecords(t, ts.ask(t, "udp", "new.default.svc.cluster.local.", dns.TypeA).Answer,
		"new.default.svc.cluster.local. 5 IN A 10.96.0.99")
	expectRcode(t, ts.ask(t, "udp", "web.default.svc.cluster.local.", dns.TypeA), dns.RcodeNameError)
}

func TestIndexOfAnotherZoneIsRejected(t *testing.T) {
	srv := newServer(t, nil)
	ix, err := index.Build(index.Options{Zone: "other.local", TTL: 5}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetIndex(ix); err == nil || !strings.Contains(err.Error(), "other.local.") {
		t.Fatalf("err %v, want a zone mismatch", err)
	}
}

func TestLargeAnswerSetsTCBitOverUDP(t *testing.T) {
	ts := startServer(t, nil)
	m := ts.ask(t, "udp", "big.db.svc.cluster.local.", dns.TypeA)
	if !m.Truncated || len(m.Answer) != 0 {
		t.Fatalf("tc=%v answers=%d, want an empty truncated answer", m.Truncated, len(m.Answer))
	}
	m = ts.ask(t, "tcp", "big.db.svc.cluster.local.", dns.TypeA)
	if m.Truncated || len(m.Answer) != 60 {
		t.Fatalf("over TCP tc=%v answers=%d, want all 60", m.Truncated, len(m.Answer))
	}
}

func TestEDNSBufferSizeIsHonoured(t *testing.T) {
	ts := startServer(t, nil)
	q := new(dns.Msg)
	q.SetQuestion("big.db.svc.cluster.local.", dns.TypeA)
	q.SetEdns0(4096, true)
	m := ts.exchange(t, "udp", q)
	if m.Truncated || len(m.Answer) != 60 {
		t.Fatalf("tc=%v answers=%d, want all 60 in a 4096-byte answer", m.Truncated, len(m.Answer))
	}
	opt := m.IsEdns0()
	if opt == nil || !opt.Do() || opt.UDPSize() != advertisedUDPSize {
		t.Fatalf("OPT %v, want one echoing DO with our size", opt)
	}
	q.IsEdns0().SetUDPSize(600)
	m = ts.exchange(t, "udp", q)
	if !m.Truncated || m.IsEdns0() == nil {
		t.Fatalf("tc=%v opt=%v, want truncated with OPT at 600 bytes", m.Truncated, m.IsEdns0())
	}
}

func TestUnknownEDNSVersionGetsBADVERS(t *testing.T) {
	ts := startServer(t, nil)
	q := new(dns.Msg)
	q.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().SetVersion(1)
	m := ts.exchange(t, "udp", q)
	expectRcode(t, m, dns.RcodeBadVers)
}

func TestGarbagePacketGetsFormErr(t *testing.T) {
	ts := startServer(t, nil)
	for _, garbage := range [][]byte{
		[]byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff\xff"),
		[]byte("\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00\x03www\x00\x00\x01\x00\x01"),
		[]byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"),
	} {
		resp := rawExchange(t, ts.addr, garbage)
		if resp.Id != 0x1234 || resp.Rcode != dns.RcodeFormatError || !resp.Response {
			t.Fatalf("answer to %q: %v", garbage, resp)
		}
	}
}

func TestTruncatedQueryGetsFormErr(t *testing.T) {
	ts := startServer(t, nil)
	q := new(dns.Msg)
	q.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
	q.SetEdns0(1232, false)
	wire, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{13, 20, len(wire) - 12, len(wire) - 1} {
		resp := rawExchange(t, ts.addr, wire[:cut])
		if resp.Rcode != dns.RcodeFormatError {
			t.Fatalf("cut at %d of %d: rcode %s", cut, len(wire), dns.RcodeToString[resp.Rcode])
		}
	}
}

func TestUnknownOpcodeGetsNotImp(t *testing.T) {
	ts := startServer(t, nil)
	q := new(dns.Msg)
	q.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
	q.Opcode = dns.OpcodeUpdate
	m := ts.exchange(t, "udp", q)
	expectRcode(t, m, dns.RcodeNotImplemented)
	if m.Opcode != dns.OpcodeUpdate {
		t.Fatalf("opcode %d not echoed", m.Opcode)
	}
}

func TestOtherClassesAndZoneTransfersAreRefused(t *testing.T) {
	ts := startServer(t, nil)
	q := new(dns.Msg)
	q.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
	q.Question[0].Qclass = dns.ClassCHAOS
	expectRcode(t, ts.exchange(t, "udp", q), dns.RcodeRefused)
	expectRcode(t, ts.ask(t, "tcp", zone, dns.TypeAXFR), dns.RcodeRefused)
}

func TestShortPacketsAndResponsesAreDropped(t *testing.T) {
	ts := startServer(t, nil)
	conn, err := net.Dial("udp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q := new(dns.Msg)
	q.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
	q.Response = true
	asResponse, _ := q.Pack()
	for _, p := range [][]byte{{1, 2, 3}, asResponse} {
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 512)
	if n, err := conn.Read(buf); err == nil {
		t.Fatalf("got a %d-byte answer to a packet that must be dropped", n)
	}
	// The server is still answering.
	expectRcode(t, ts.ask(t, "udp", "web.default.svc.cluster.local.", dns.TypeA), dns.RcodeSuccess)
}

func TestTCPConnectionFloodLeavesUDPAnswering(t *testing.T) {
	ts := startServer(t, nil)
	var conns []net.Conn
	for range 50 {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	expectRcode(t, ts.ask(t, "udp", "web.default.svc.cluster.local.", dns.TypeA), dns.RcodeSuccess)
	for _, c := range conns {
		c.Close()
	}
	// Slots free up as the server notices the closed connections.
	deadline := time.Now().Add(2 * time.Second)
	for {
		c := &dns.Client{Net: "tcp", Timeout: 500 * time.Millisecond}
		q := new(dns.Msg)
		q.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
		if m, _, err := c.Exchange(q, ts.addr); err == nil && m.Rcode == dns.RcodeSuccess {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("TCP still not answering after the flood: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSeveralQueriesOnOneTCPConnection(t *testing.T) {
	ts := startServer(t, nil)
	conn, err := dns.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, name := range []string{"web.default.svc.cluster.local.", "pg.db.svc.cluster.local.", "nope.cluster.local."} {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		if err := conn.WriteMsg(q); err != nil {
			t.Fatal(err)
		}
		m, err := conn.ReadMsg()
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		if m.Id != q.Id {
			t.Fatalf("query %d: id %d, want %d", i, m.Id, q.Id)
		}
	}
}

func rawExchange(t *testing.T, addr string, packet []byte) *dns.Msg {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(packet); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no answer to %q: %v", packet, err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf[:n]); err != nil {
		t.Fatalf("answer to %q does not parse: %v", packet, err)
	}
	return m
}

func TestServesOverIPv6(t *testing.T) {
	services, slices := cluster()
	ix, err := index.Build(index.Options{Zone: zone, TTL: 5}, services, slices)
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, nil)
	if err := srv.SetIndex(ix); err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatalf("listen on ::1: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeUDP(ctx, udp) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	ts := &testServer{Server: srv, addr: udp.LocalAddr().String()}
	expectRecords(t, ts.ask(t, "udp", "web.default.svc.cluster.local.", dns.TypeA).Answer,
		"web.default.svc.cluster.local. 5 IN A 10.96.0.10")
}

func TestStoppedServerFreesItsPortEvenWithChildProcessesRunning(t *testing.T) {
	srv := newServer(t, nil)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := udp.LocalAddr().(*net.UDPAddr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeUDP(ctx, udp) }()
	ts := &testServer{Server: srv, addr: addr.String()}
	expectRcode(t, ts.ask(t, "udp", "web.default.svc.cluster.local.", dns.TypeA), dns.RcodeServerFailure)
	// A process started while serving must not inherit the socket.
	child := exec.Command("sleep", "5")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		child.Process.Kill()
		child.Wait()
	}()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	again, err := net.ListenUDP("udp", addr)
	if err != nil {
		t.Fatalf("port still held after stop: %v", err)
	}
	again.Close()
}
