package server

import (
	"bytes"
	"errors"
)

// Offsets and bits of the DNS header (RFC 1035 §4.1.1).
const (
	headerLen = 12
	flagQR    = 0x80
	flagAA    = 0x04
	flagTC    = 0x02
	flagRD    = 0x01
	flagRA    = 0x80
	flagCD    = 0x10
	optLen    = 11
	typeOPT   = 41
	classIN   = 1

	// advertisedUDPSize is the EDNS0 payload size bulkhead announces (DNS flag day 2020).
	advertisedUDPSize = 1232
	// maxUDPSize caps what a client may ask for, keeping answers below common fragmentation.
	maxUDPSize = 4096
)

var errFormat = errors.New("malformed query")

// query is what the hot path knows about a query. One lives in each worker and is reused.
type query struct {
	id          uint16
	flags2      byte // byte 2 of the header: QR, opcode, AA, TC, RD
	flags3      byte // byte 3: RA, Z, AD, CD, rcode
	questionEnd int
	qtype       uint16
	qclass      uint16
	lower       [255]byte
	lowerLen    int
	labelStarts [128]uint8
	labels      int
	edns        bool
	udpSize     uint16
	do          bool
	ednsVersion uint8
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

func put16(b []byte, v uint16) { b[0], b[1] = byte(v>>8), byte(v) }

func (q *query) opcode() byte { return (q.flags2 >> 3) & 0xF }

// name is the lower-cased question name in wire format.
func (q *query) name() []byte { return q.lower[:q.lowerLen] }

// parse reads header, question and the additional section of msg (at least headerLen bytes).
// The header fields are set even when the rest is malformed, so a FORMERR can echo them.
func (q *query) parse(msg []byte) error {
	q.id = be16(msg[0:])
	q.flags2, q.flags3 = msg[2], msg[3]
	q.edns, q.do, q.udpSize, q.ednsVersion = false, false, 0, 0
	q.lowerLen, q.labels, q.questionEnd = 0, 0, 0
	if be16(msg[4:]) != 1 || be16(msg[6:]) != 0 || be16(msg[8:]) != 0 {
		return errFormat
	}
	off := headerLen
	n := 0
	for {
		if off >= len(msg) {
			return errFormat
		}
		l := int(msg[off])
		if l == 0 {
			q.lower[n] = 0
			n++
			off++
			break
		}
		// Compression pointers and extended label types have no place in a question.
		if l > 63 || off+1+l > len(msg) || n+1+l+1 > len(q.lower) {
			return errFormat
		}
		q.labelStarts[q.labels] = uint8(n)
		q.labels++
		q.lower[n] = byte(l)
		n++
		for _, c := range msg[off+1 : off+1+l] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			q.lower[n] = c
			n++
		}
		off += 1 + l
	}
	if off+4 > len(msg) {
		return errFormat
	}
	q.lowerLen = n
	q.qtype, q.qclass = be16(msg[off:]), be16(msg[off+2:])
	off += 4
	q.questionEnd = off
	for range be16(msg[10:]) {
		nameStart := off
		var err error
		if off, err = skipName(msg, off); err != nil {
			return err
		}
		if off+10 > len(msg) {
			return errFormat
		}
		rrtype, class, rdlen := be16(msg[off:]), be16(msg[off+2:]), int(be16(msg[off+8:]))
		ttl := msg[off+4 : off+8]
		off += 10
		if off+rdlen > len(msg) {
			return errFormat
		}
		if rrtype == typeOPT {
			// RFC 6891 §6.1.1: one OPT, owned by the root.
			if q.edns || msg[nameStart] != 0 {
				return errFormat
			}
			q.edns, q.udpSize, q.ednsVersion, q.do = true, class, ttl[1], ttl[2]&0x80 != 0
		}
		off += rdlen
	}
	return nil
}

func skipName(msg []byte, off int) (int, error) {
	for {
		if off >= len(msg) {
			return 0, errFormat
		}
		l := int(msg[off])
		switch {
		case l == 0:
			return off + 1, nil
		case l&0xC0 == 0xC0:
			if off+2 > len(msg) {
				return 0, errFormat
			}
			return off + 2, nil
		case l > 63:
			return 0, errFormat
		}
		off += 1 + l
	}
}

// inZone reports whether the question name is zoneWire or below it.
func (q *query) inZone(zoneWire []byte) bool {
	name := q.name()
	for i := 0; i < q.labels; i++ {
		start := int(q.labelStarts[i])
		if len(name)-start == len(zoneWire) {
			return bytes.Equal(name[start:], zoneWire)
		}
	}
	return len(zoneWire) == 1 && len(name) == 1
}

// maxResponse is the largest response the client accepts over UDP.
func (q *query) maxResponse() int {
	if !q.edns || q.udpSize < 512 {
		return 512
	}
	return min(int(q.udpSize), maxUDPSize)
}

// appendHeader starts a response to q with the given rcode and section counts.
func appendHeader(out []byte, q *query, rcode byte, qd, an, ns, ar uint16) []byte {
	out = append(out,
		byte(q.id>>8), byte(q.id),
		flagQR|q.flags2&(0xF<<3)|q.flags2&flagRD,
		q.flags3&flagCD|rcode&0xF,
		byte(qd>>8), byte(qd), byte(an>>8), byte(an), byte(ns>>8), byte(ns), byte(ar>>8), byte(ar))
	return out
}

// appendOPT adds the OPT record answering the client's: our payload size, the extended rcode
// bits and the client's DO bit (RFC 3225).
func appendOPT(out []byte, q *query, extendedRcode byte) []byte {
	var do byte
	if q.do {
		do = 0x80
	}
	return append(out, 0, 0, typeOPT, byte(advertisedUDPSize>>8), byte(advertisedUDPSize&0xFF),
		extendedRcode, 0, do, 0, 0, 0)
}
