package server

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzAnswer feeds arbitrary packets to the hot path: it must never panic, and whatever it
// answers must be a well-formed response to the query's ID that fits the client's UDP size.
func FuzzAnswer(f *testing.F) {
	for _, seed := range []struct {
		name  string
		qtype uint16
		edns  bool
	}{
		{"web.default.svc.cluster.local.", dns.TypeA, false},
		{"WEB.default.svc.cluster.local.", dns.TypeSRV, true},
		{"big.db.svc.cluster.local.", dns.TypeA, false},
		{"_sql._tcp.pg.db.svc.cluster.local.", dns.TypeSRV, true},
		{"nope.cluster.local.", dns.TypeAAAA, true},
		{"5.0.1.10.in-addr.arpa.", dns.TypePTR, false},
		{"example.com.", dns.TypeA, false},
	} {
		q := new(dns.Msg)
		q.SetQuestion(seed.name, seed.qtype)
		if seed.edns {
			q.SetEdns0(1232, true)
		}
		wire, err := q.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire)
	}
	f.Add([]byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"))
	ts := startServer(f, nil)
	f.Fuzz(func(t *testing.T, packet []byte) {
		var q query
		out, v, _ := ts.answer(&q, packet, make([]byte, 0, 512), true)
		if v != verdictAnswer {
			return
		}
		m := new(dns.Msg)
		if err := m.Unpack(out); err != nil {
			t.Fatalf("answer %x to %x does not parse: %v", out, packet, err)
		}
		if !m.Response || m.Id != be16(packet) {
			t.Fatalf("answer %v is not a response to ID %d", m, be16(packet))
		}
		if len(out) > 512 && (!q.edns || len(out) > q.maxResponse()) {
			t.Fatalf("%d-byte UDP answer exceeds the client's size", len(out))
		}
	})
}
