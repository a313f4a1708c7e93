package index

import (
	"sort"
	"strings"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/bulkhead-dev/bulkhead/dns/internal/fixture"
)

// answer unpacks the index's response for name and qtype, or "NXDOMAIN" when the name is absent.
func answer(t *testing.T, ix *Index, name string, qtype uint16) string {
	t.Helper()
	key, err := wireName(name)
	if err != nil {
		t.Fatal(err)
	}
	node := ix.Lookup(key)
	if node == nil {
		return "NXDOMAIN"
	}
	m := new(dns.Msg)
	if err := m.Unpack(node.Response(qtype)); err != nil {
		t.Fatalf("%s: pre-packed response does not parse: %v", name, err)
	}
	var out []string
	for _, rr := range m.Answer {
		f := strings.Fields(rr.String())
		out = append(out, strings.Join(f[3:], " "))
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "NODATA"
	}
	return strings.Join(out, ", ")
}

func build(t *testing.T, services []*corev1.Service, slices ...*discoveryv1.EndpointSlice) *Index {
	t.Helper()
	ix, err := Build(Options{Zone: "Cluster.Local", TTL: 5}, services, slices)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func ptr[T any](v T) *T { return &v }

func TestBuildTurnsEndpointSlicesIntoHeadlessRecords(t *testing.T) {
	http := fixture.Port{Name: "http", Port: 80}
	headless := fixture.HeadlessService("ns", "h", http)
	published := fixture.HeadlessService("ns", "p")
	published.Spec.PublishNotReadyAddresses = true
	v4 := fixture.Slice("ns", "h", "h-4", discoveryv1.AddressTypeIPv4, []fixture.Port{http},
		fixture.Endpoint{IP: "10.0.0.1"}, fixture.Endpoint{IP: "10.0.0.2", NotReady: true}, fixture.Endpoint{IP: "10.0.0.3", Hostname: "Bad_Host!"})
	terminating := fixture.Slice("ns", "h", "h-t", discoveryv1.AddressTypeIPv4, nil, fixture.Endpoint{IP: "10.0.0.4"})
	terminating.Endpoints[0].Conditions.Terminating = ptr(true)
	duplicate := fixture.Slice("ns", "h", "h-dup", discoveryv1.AddressTypeIPv4, nil, fixture.Endpoint{IP: "10.0.0.1"})
	v6 := fixture.Slice("ns", "h", "h-6", discoveryv1.AddressTypeIPv6, nil, fixture.Endpoint{IP: "fd00::1"})
	fqdn := fixture.Slice("ns", "h", "h-f", discoveryv1.AddressTypeFQDN, nil, fixture.Endpoint{IP: "example.com"})
	unlabelled := fixture.Slice("ns", "h", "h-u", discoveryv1.AddressTypeIPv4, nil, fixture.Endpoint{IP: "10.0.0.9"})
	unlabelled.Labels = nil
	nilReady := fixture.Slice("ns", "p", "p-1", discoveryv1.AddressTypeIPv4, nil, fixture.Endpoint{IP: "10.0.1.1", NotReady: true}, fixture.Endpoint{IP: "10.0.1.2"})
	nilReady.Endpoints[1].Conditions.Ready = nil
	ix := build(t, []*corev1.Service{headless, published}, v4, terminating, duplicate, v6, fqdn, unlabelled, nilReady)

	for _, tc := range []struct {
		name  string
		qtype uint16
		want  string
	}{
		{"h.ns.svc.cluster.local.", dns.TypeA, "A 10.0.0.1"},
		{"h.ns.svc.cluster.local.", dns.TypeAAAA, "AAAA fd00::1"},
		{"fd00--1.h.ns.svc.cluster.local.", dns.TypeAAAA, "AAAA fd00::1"},
		{"10-0-0-2.h.ns.svc.cluster.local.", dns.TypeA, "NXDOMAIN"},
		{"10-0-0-3.h.ns.svc.cluster.local.", dns.TypeA, "NXDOMAIN"},
		{"_http._tcp.h.ns.svc.cluster.local.", dns.TypeSRV, "SRV 0 100 80 10-0-0-1.h.ns.svc.cluster.local."},
		{"p.ns.svc.cluster.local.", dns.TypeA, "A 10.0.1.1, A 10.0.1.2"},
		{"1.1.0.10.in-addr.arpa.", dns.TypePTR, "PTR 10-0-1-1.p.ns.svc.cluster.local."},
		{"NS.svc.CLUSTER.local.", dns.TypeA, "NODATA"},
	} {
		if got := answer(t, ix, strings.ToLower(tc.name), tc.qtype); got != tc.want {
			t.Errorf("%s %s = %s, want %s", tc.name, dns.TypeToString[tc.qtype], got, tc.want)
		}
	}
}

func TestBuildSkipsNamesThatCannotBeDNSNames(t *testing.T) {
	bad := fixture.ExternalNameService("ns", "ext", "not a name..")
	ix := build(t, []*corev1.Service{bad, fixture.ClusterIPService("ns", "noip", []string{""})})
	for _, name := range []string{"ext.ns.svc.cluster.local.", "noip.ns.svc.cluster.local."} {
		if got := answer(t, ix, name, dns.TypeA); got != "NXDOMAIN" {
			t.Errorf("%s = %s, want NXDOMAIN", name, got)
		}
	}
}

func TestBuildRejectsABadZone(t *testing.T) {
	for _, zone := range []string{"", ".", "a..b"} {
		if _, err := Build(Options{Zone: zone, TTL: 5}, nil, nil); err == nil || !strings.Contains(err.Error(), "not a domain name") {
			t.Errorf("zone %q: err %v", zone, err)
		}
	}
}

func TestSharedIPHasOnePTRPerOwner(t *testing.T) {
	a := fixture.HeadlessService("ns", "a")
	b := fixture.HeadlessService("ns", "b")
	ix := build(t, []*corev1.Service{a, b},
		fixture.Slice("ns", "a", "a-1", discoveryv1.AddressTypeIPv4, nil, fixture.Endpoint{IP: "10.0.0.1", Hostname: "x"}),
		fixture.Slice("ns", "b", "b-1", discoveryv1.AddressTypeIPv4, nil, fixture.Endpoint{IP: "10.0.0.1"}))
	want := "PTR 10-0-0-1.b.ns.svc.cluster.local., PTR x.a.ns.svc.cluster.local."
	if got := answer(t, ix, "1.0.0.10.in-addr.arpa.", dns.TypePTR); got != want {
		t.Fatalf("PTR = %s, want %s", got, want)
	}
}
