package index

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// SchemaVersion is the Kubernetes DNS specification version answered at dns-version.<zone>.
const SchemaVersion = "1.1.0"

// schemaVersionTTL is CoreDNS's TTL for the schema version record: it never changes at run time.
const schemaVersionTTL = 28800

// Options shape the records an Index serves.
type Options struct {
	// Zone is the cluster domain, for example "cluster.local".
	Zone string
	// TTL is the TTL of every record, including the SOA's minimum (negative caching) field.
	TTL uint32
	// Serial is the SOA serial; zero means the build time in Unix seconds.
	Serial uint32
}

// Index is an immutable set of pre-packed answers for one cluster zone.
type Index struct {
	zone     string
	zoneWire []byte
	nodes    map[string]*Node
	soaRR    []byte
	services int
}

// Node is one owner name: a complete response per query type it has records for, and one for
// every other type (NODATA, or the CNAME of an ExternalName service).
type Node struct {
	byType []typedResponse
	other  []byte
}

type typedResponse struct {
	qtype uint16
	wire  []byte
}

// Response returns the pre-packed response for qtype. The question in it is the lower-case
// name; callers copy the query's own question over it before sending.
func (n *Node) Response(qtype uint16) []byte {
	for i := range n.byType {
		if n.byType[i].qtype == qtype {
			return n.byType[i].wire
		}
	}
	return n.other
}

// Lookup returns the node for a lower-cased wire-format name, or nil.
func (ix *Index) Lookup(lowerWireName []byte) *Node {
	return ix.nodes[string(lowerWireName)]
}

// ZoneWire is the cluster zone in lower-case wire format.
func (ix *Index) ZoneWire() []byte { return ix.zoneWire }

// Zone is the cluster zone as a canonical FQDN ("cluster.local.").
func (ix *Index) Zone() string { return ix.zone }

// SOARecord is the zone's SOA record in uncompressed wire format, for the authority section of
// synthesized NXDOMAIN answers.
func (ix *Index) SOARecord() []byte { return ix.soaRR }

// Names counts owner names with answers (including empty non-terminals).
func (ix *Index) Names() int { return len(ix.nodes) }

// Services counts the Services the index was built from.
func (ix *Index) Services() int { return ix.services }

// Build creates the index of one complete view of Services and EndpointSlices.
func Build(opts Options, services []*corev1.Service, endpointSlices []*discoveryv1.EndpointSlice) (*Index, error) {
	zone := dns.CanonicalName(opts.Zone)
	if _, ok := dns.IsDomainName(zone); !ok || zone == "." {
		return nil, fmt.Errorf("cluster zone %q is not a domain name", opts.Zone)
	}
	serial := opts.Serial
	if serial == 0 {
		serial = uint32(time.Now().Unix())
	}
	b := &builder{zone: zone, ttl: opts.TTL, names: map[string]*rrsets{}}
	b.soa = &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: opts.TTL},
		Ns:      "ns.dns." + zone,
		Mbox:    "hostmaster." + zone,
		Serial:  serial,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  opts.TTL,
	}
	b.add(b.soa)
	version := &dns.TXT{Hdr: b.hdr("dns-version."+zone, dns.TypeTXT), Txt: []string{SchemaVersion}}
	version.Hdr.Ttl = schemaVersionTTL
	b.add(version)

	slicesByService := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range endpointSlices {
		name := s.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		key := s.Namespace + "/" + name
		slicesByService[key] = append(slicesByService[key], s)
	}
	namespaces := map[string]bool{}
	for _, svc := range services {
		if b.addService(svc, slicesByService[svc.Namespace+"/"+svc.Name]) {
			namespaces[strings.ToLower(svc.Namespace)] = true
		}
	}

	ix := &Index{zone: zone, nodes: make(map[string]*Node, len(b.names)*2), services: len(services)}
	var err error
	if ix.zoneWire, err = wireName(zone); err != nil {
		return nil, err
	}
	soaRR := make([]byte, 512)
	n, err := dns.PackRR(b.soa, soaRR, 0, nil, false)
	if err != nil {
		return nil, fmt.Errorf("pack SOA: %w", err)
	}
	ix.soaRR = soaRR[:n]
	b.addEmptyNonTerminals(namespaces)
	for name, sets := range b.names {
		node, err := b.pack(name, sets)
		if err != nil {
			return nil, err
		}
		key, err := wireName(name)
		if err != nil {
			return nil, err
		}
		ix.nodes[string(key)] = node
	}
	return ix, nil
}

type rrsets struct {
	byType map[uint16][]dns.RR
	seen   map[string]bool
}

type builder struct {
	zone  string
	ttl   uint32
	soa   *dns.SOA
	names map[string]*rrsets
}

func (b *builder) hdr(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: b.ttl}
}

// add records rr once; the same record from two EndpointSlices is one record.
func (b *builder) add(rr dns.RR) {
	name := strings.ToLower(rr.Header().Name)
	sets := b.names[name]
	if sets == nil {
		sets = &rrsets{byType: map[uint16][]dns.RR{}, seen: map[string]bool{}}
		b.names[name] = sets
	}
	key := rr.String()
	if sets.seen[key] {
		return
	}
	sets.seen[key] = true
	t := rr.Header().Rrtype
	sets.byType[t] = append(sets.byType[t], rr)
}

// addAddress adds an A or AAAA record, and with withPTR the reverse record pointing back.
func (b *builder) addAddress(name string, ip netip.Addr, withPTR bool) {
	if ip.Is4() {
		b.add(&dns.A{Hdr: b.hdr(name, dns.TypeA), A: ip.AsSlice()})
	} else {
		b.add(&dns.AAAA{Hdr: b.hdr(name, dns.TypeAAAA), AAAA: ip.AsSlice()})
	}
	if !withPTR {
		return
	}
	if rev, err := dns.ReverseAddr(ip.String()); err == nil {
		b.add(&dns.PTR{Hdr: b.hdr(rev, dns.TypePTR), Ptr: name})
	}
}

// addService adds the records of one Service; false if its names cannot be DNS names.
func (b *builder) addService(svc *corev1.Service, endpointSlices []*discoveryv1.EndpointSlice) bool {
	if !isLabel(svc.Name) || !isLabel(svc.Namespace) {
		return false
	}
	base := svc.Name + "." + svc.Namespace + ".svc." + b.zone
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		target := dns.Fqdn(strings.ToLower(svc.Spec.ExternalName))
		if _, ok := dns.IsDomainName(target); !ok || target == "." {
			return true
		}
		b.add(&dns.CNAME{Hdr: b.hdr(base, dns.TypeCNAME), Target: target})
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		b.addHeadless(svc, base, endpointSlices)
	default:
		b.addClusterIP(svc, base)
	}
	return true
}

func (b *builder) addClusterIP(svc *corev1.Service, base string) {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	added := false
	for _, s := range ips {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		b.addAddress(base, ip.Unmap(), true)
		added = true
	}
	if !added {
		return
	}
	var all []dns.RR
	for _, p := range svc.Spec.Ports {
		srv := &dns.SRV{Hdr: b.hdr(base, dns.TypeSRV), Port: uint16(p.Port), Target: base}
		all = append(all, srv)
		if isLabel(p.Name) {
			named := *srv
			named.Hdr.Name = srvName(p.Name, p.Protocol, base)
			named.Weight = 100
			b.add(&named)
		}
	}
	for _, rr := range withWeights(all) {
		b.add(rr)
	}
}

type endpointRef struct {
	name string
	ip   netip.Addr
}

func (b *builder) addHeadless(svc *corev1.Service, base string, endpointSlices []*discoveryv1.EndpointSlice) {
	var all []dns.RR
	named := map[string][]dns.RR{}
	for _, s := range endpointSlices {
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		var refs []endpointRef
		for _, ep := range s.Endpoints {
			if !svc.Spec.PublishNotReadyAddresses && !isReady(ep.Conditions) {
				continue
			}
			for _, a := range ep.Addresses {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					continue
				}
				ip = ip.Unmap()
				label := endpointLabel(ep, ip)
				if label == "" {
					continue
				}
				refs = append(refs, endpointRef{name: label + "." + base, ip: ip})
			}
		}
		for _, r := range refs {
			b.addAddress(r.name, r.ip, true)
			b.addAddress(base, r.ip, false)
			for _, p := range s.Ports {
				if p.Port == nil {
					continue
				}
				srv := &dns.SRV{Hdr: b.hdr(base, dns.TypeSRV), Port: uint16(*p.Port), Target: r.name}
				all = append(all, srv)
				if p.Name != nil && isLabel(*p.Name) {
					proto := corev1.ProtocolTCP
					if p.Protocol != nil {
						proto = *p.Protocol
					}
					n := *srv
					n.Hdr.Name = srvName(*p.Name, proto, base)
					named[n.Hdr.Name] = append(named[n.Hdr.Name], &n)
				}
			}
		}
	}
	for _, rr := range withWeights(all) {
		b.add(rr)
	}
	for _, rrs := range named {
		for _, rr := range withWeights(rrs) {
			b.add(rr)
		}
	}
}

// withWeights spreads an SRV set's weight like CoreDNS: 100 shared by the targets, at least 1.
func withWeights(rrs []dns.RR) []dns.RR {
	unique := map[string]bool{}
	var out []dns.RR
	for _, rr := range rrs {
		if k := rr.String(); !unique[k] {
			unique[k] = true
			out = append(out, rr)
		}
	}
	w := uint16(1)
	if len(out) > 0 && len(out) <= 100 {
		w = uint16(100 / len(out))
	}
	for _, rr := range out {
		rr.(*dns.SRV).Weight = w
	}
	return out
}

func srvName(port string, proto corev1.Protocol, base string) string {
	return "_" + strings.ToLower(port) + "._" + strings.ToLower(string(proto)) + "." + base
}

// isReady follows the EndpointSlice API: a nil ready condition means ready, and terminating
// endpoints are not ready.
func isReady(c discoveryv1.EndpointConditions) bool {
	if c.Terminating != nil && *c.Terminating {
		return false
	}
	return c.Ready == nil || *c.Ready
}

// endpointLabel names an endpoint by its hostname, or by its IP with dashes like CoreDNS.
func endpointLabel(ep discoveryv1.Endpoint, ip netip.Addr) string {
	if ep.Hostname != nil && *ep.Hostname != "" {
		h := strings.ToLower(*ep.Hostname)
		if isLabel(h) {
			return h
		}
		return ""
	}
	s := ip.String()
	return strings.NewReplacer(".", "-", ":", "-").Replace(s)
}

func isLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// addEmptyNonTerminals adds the names that exist without records, as CoreDNS has them: svc.<zone>,
// pod.<zone> and <namespace>.svc.<zone> for every namespace with a Service. Deeper empty names
// (such as _tcp.<service>) are NXDOMAIN in CoreDNS, and here.
func (b *builder) addEmptyNonTerminals(namespaces map[string]bool) {
	names := []string{"svc." + b.zone, "pod." + b.zone}
	for ns := range namespaces {
		names = append(names, ns+".svc."+b.zone)
	}
	for _, name := range names {
		if _, ok := b.names[name]; !ok {
			b.names[name] = &rrsets{byType: map[uint16][]dns.RR{}, seen: map[string]bool{}}
		}
	}
}

// pack renders one node: a response per record type present and the fallback for every other
// type, ANY included (CoreDNS answers ANY with NODATA).
func (b *builder) pack(name string, sets *rrsets) (*Node, error) {
	node := &Node{}
	types := make([]uint16, 0, len(sets.byType))
	for t := range sets.byType {
		types = append(types, t)
	}
	slices.Sort(types)
	for _, t := range types {
		rrs := sets.byType[t]
		if t == dns.TypeCNAME {
			wire, err := b.packMsg(name, dns.TypeCNAME, rrs, nil, nil)
			if err != nil {
				return nil, err
			}
			node.other = wire
			continue
		}
		wire, err := b.packMsg(name, t, rrs, nil, b.glue(rrs))
		if err != nil {
			return nil, err
		}
		node.byType = append(node.byType, typedResponse{qtype: t, wire: wire})
	}
	if node.other == nil {
		wire, err := b.packMsg(name, dns.TypeNone, nil, []dns.RR{b.soa}, nil)
		if err != nil {
			return nil, err
		}
		node.other = wire
	}
	return node, nil
}

// glue is the additional section of an SRV answer: the targets' addresses.
func (b *builder) glue(rrs []dns.RR) []dns.RR {
	var extra []dns.RR
	for _, rr := range rrs {
		srv, ok := rr.(*dns.SRV)
		if !ok {
			continue
		}
		if target := b.names[strings.ToLower(srv.Target)]; target != nil {
			extra = append(extra, target.byType[dns.TypeA]...)
			extra = append(extra, target.byType[dns.TypeAAAA]...)
		}
	}
	return dedupe(extra)
}

func dedupe(rrs []dns.RR) []dns.RR {
	seen := map[string]bool{}
	out := rrs[:0:0]
	for _, rr := range rrs {
		if k := rr.String(); !seen[k] {
			seen[k] = true
			out = append(out, rr)
		}
	}
	return out
}

func (b *builder) packMsg(name string, qtype uint16, answer, authority, extra []dns.RR) ([]byte, error) {
	m := &dns.Msg{
		MsgHdr:   dns.MsgHdr{Response: true, Authoritative: true, Opcode: dns.OpcodeQuery},
		Compress: true,
		Question: []dns.Question{{Name: name, Qtype: qtype, Qclass: dns.ClassINET}},
		Answer:   answer,
		Ns:       authority,
		Extra:    extra,
	}
	wire, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack answer for %s %s: %w", name, dns.TypeToString[qtype], err)
	}
	return wire, nil
}

func wireName(name string) ([]byte, error) {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(strings.ToLower(name), buf, 0, nil, false)
	if err != nil {
		return nil, fmt.Errorf("name %q: %w", name, err)
	}
	return buf[:n], nil
}
