package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/bulkhead-dev/bulkhead/dns/index"
)

// Resolver answers names outside the cluster zone. The upstream package implements it.
type Resolver interface {
	Resolve(ctx context.Context, req *dns.Msg) (*dns.Msg, error)
}

// Config configures a Server.
type Config struct {
	// Zone is the cluster domain; its names are answered from the index only.
	Zone string
	// Upstream resolves every other name; nil makes them REFUSED.
	Upstream Resolver
	// UpstreamTimeout bounds one upstream resolution; default 5 s.
	UpstreamTimeout time.Duration
	// MaxUpstreamInFlight bounds concurrent upstream resolutions; beyond it queries get
	// SERVFAIL at once instead of piling up goroutines. Default 1024.
	MaxUpstreamInFlight int
	// MaxTCPConnections bounds open TCP connections; further ones are closed at once. Default 1024.
	MaxTCPConnections int
	// TCPIdleTimeout closes TCP connections idle this long; default 10 s.
	TCPIdleTimeout time.Duration
	Metrics        *Metrics
	Log            *slog.Logger
}

// Server answers DNS queries. Create it with New, give it an index with SetIndex and run it
// with ServeUDP and ServeTCP.
type Server struct {
	cfg      Config
	zoneWire []byte
	index    atomic.Pointer[index.Index]
	inFlight chan struct{}
}

// New validates cfg and returns a Server that has no index yet.
func New(cfg Config) (*Server, error) {
	zone := dns.CanonicalName(cfg.Zone)
	if _, ok := dns.IsDomainName(zone); !ok || zone == "." {
		return nil, fmt.Errorf("cluster zone %q is not a domain name", cfg.Zone)
	}
	zoneWire := make([]byte, 256)
	n, err := dns.PackDomainName(zone, zoneWire, 0, nil, false)
	if err != nil {
		return nil, fmt.Errorf("cluster zone %q: %w", cfg.Zone, err)
	}
	if cfg.Metrics == nil {
		return nil, errors.New("server metrics are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.UpstreamTimeout == 0 {
		cfg.UpstreamTimeout = 5 * time.Second
	}
	if cfg.MaxUpstreamInFlight == 0 {
		cfg.MaxUpstreamInFlight = 1024
	}
	if cfg.MaxTCPConnections == 0 {
		cfg.MaxTCPConnections = 1024
	}
	if cfg.TCPIdleTimeout == 0 {
		cfg.TCPIdleTimeout = 10 * time.Second
	}
	return &Server{cfg: cfg, zoneWire: zoneWire[:n], inFlight: make(chan struct{}, cfg.MaxUpstreamInFlight)}, nil
}

// SetIndex makes ix the answers of every following query. ix's zone must be the server's.
func (s *Server) SetIndex(ix *index.Index) error {
	if string(ix.ZoneWire()) != string(s.zoneWire) {
		return fmt.Errorf("index zone %s is not the server's zone %s", ix.Zone(), dns.CanonicalName(s.cfg.Zone))
	}
	s.index.Store(ix)
	return nil
}

// Index returns the index being served, or nil before the first SetIndex.
func (s *Server) Index() *index.Index { return s.index.Load() }

// verdict says what to do with a query after the hot path looked at it.
type verdict int

const (
	verdictAnswer verdict = iota
	verdictDrop
	verdictUpstream
)

// answer is the hot path: it writes the response to msg into out (reusing its storage) or says
// why it did not. udp limits the response to the client's UDP size.
func (s *Server) answer(q *query, msg, out []byte, udp bool) ([]byte, verdict, Source) {
	if len(msg) < headerLen || msg[2]&flagQR != 0 {
		return nil, verdictDrop, SourceError
	}
	out = out[:0]
	if err := q.parse(msg); err != nil {
		if q.opcode() != dns.OpcodeQuery {
			return appendHeader(out, q, dns.RcodeNotImplemented, 0, 0, 0, 0), verdictAnswer, SourceError
		}
		return appendHeader(out, q, dns.RcodeFormatError, 0, 0, 0, 0), verdictAnswer, SourceError
	}
	question := msg[headerLen:q.questionEnd]
	switch {
	case q.opcode() != dns.OpcodeQuery:
		return s.short(q, question, out, dns.RcodeNotImplemented, 0), verdictAnswer, SourceError
	case q.edns && q.ednsVersion != 0:
		// BADVERS is 16: rcode 0 in the header, 1 in the OPT's extended rcode byte.
		return s.short(q, question, out, 0, 1), verdictAnswer, SourceError
	case q.qclass != classIN, q.qtype == dns.TypeAXFR, q.qtype == dns.TypeIXFR:
		return s.short(q, question, out, dns.RcodeRefused, 0), verdictAnswer, SourceError
	}
	ix := s.index.Load()
	if ix != nil {
		if node := ix.Lookup(q.name()); node != nil {
			out = append(out, node.Response(q.qtype)...)
			put16(out, q.id)
			out[2] = flagQR | flagAA | q.flags2&flagRD
			out[3] = out[3]&0x0F | q.flags3&flagCD
			copy(out[headerLen:], question)
			return s.finish(q, question, out, udp), verdictAnswer, SourceCluster
		}
	}
	if q.inZone(s.zoneWire) {
		if ix == nil {
			return s.short(q, question, out, dns.RcodeServerFailure, 0), verdictAnswer, SourceCluster
		}
		out = appendHeader(out, q, dns.RcodeNameError, 1, 0, 1, 0)
		out[2] |= flagAA
		out = append(out, question...)
		out = append(out, ix.SOARecord()...)
		return s.finish(q, question, out, udp), verdictAnswer, SourceCluster
	}
	if s.cfg.Upstream != nil {
		return nil, verdictUpstream, SourceUpstream
	}
	return s.short(q, question, out, dns.RcodeRefused, 0), verdictAnswer, SourceError
}

// short is an answer with no records: header, question and, for EDNS clients, an OPT.
func (s *Server) short(q *query, question, out []byte, rcode, extendedRcode byte) []byte {
	ar := uint16(0)
	if q.edns {
		ar = 1
	}
	out = appendHeader(out, q, rcode, 1, 0, 0, ar)
	out = append(out, question...)
	if q.edns {
		out = appendOPT(out, q, extendedRcode)
	}
	return out
}

// finish adds the OPT record and, over UDP, swaps a too-large answer for a truncated one.
func (s *Server) finish(q *query, question, out []byte, udp bool) []byte {
	if q.edns {
		put16(out[10:], be16(out[10:])+1)
		out = appendOPT(out, q, 0)
	}
	if udp && len(out) > q.maxResponse() {
		s.cfg.Metrics.truncated.Inc()
		rcode := out[3] & 0xF
		out = s.short(q, question, out[:0], rcode, 0)
		out[2] |= flagTC | flagAA
	}
	return out
}

// resolveUpstream is the slow path for names outside the cluster zone.
func (s *Server) resolveUpstream(ctx context.Context, q *query, msg []byte, udp bool) ([]byte, int) {
	req := new(dns.Msg)
	if err := req.Unpack(msg); err != nil {
		req = nil
	}
	fail := func(rcode int) ([]byte, int) {
		out := s.short(q, msg[headerLen:q.questionEnd], nil, byte(rcode), 0)
		out[3] |= flagRA
		return out, rcode
	}
	if req == nil {
		return fail(dns.RcodeFormatError)
	}
	select {
	case s.inFlight <- struct{}{}:
		defer func() { <-s.inFlight }()
	default:
		return fail(dns.RcodeServerFailure)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.UpstreamTimeout)
	defer cancel()
	resp, err := s.cfg.Upstream.Resolve(ctx, req)
	if err != nil {
		s.cfg.Log.Debug("upstream resolution failed", "name", req.Question[0].Name, "err", err)
		return fail(dns.RcodeServerFailure)
	}
	reply := resp.Copy()
	reply.Id, reply.Response, reply.Opcode = req.Id, true, dns.OpcodeQuery
	reply.RecursionDesired, reply.RecursionAvailable = req.RecursionDesired, true
	reply.CheckingDisabled, reply.Authoritative = req.CheckingDisabled, false
	reply.Question = req.Question
	reply.Compress = true
	var options []dns.EDNS0
	if opt := reply.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if _, ok := o.(*dns.EDNS0_EDE); ok {
				options = append(options, o)
			}
		}
	}
	extra := reply.Extra[:0]
	for _, rr := range reply.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	reply.Extra = extra
	if q.edns {
		reply.SetEdns0(advertisedUDPSize, q.do)
		opt := reply.IsEdns0()
		opt.Option = options
	}
	if udp {
		reply.Truncate(q.maxResponse())
	}
	out, err := reply.Pack()
	if err != nil {
		s.cfg.Log.Warn("packing upstream answer failed", "name", req.Question[0].Name, "err", err)
		return fail(dns.RcodeServerFailure)
	}
	return out, reply.Rcode
}

// ServeUDP answers queries on conn until ctx ends or conn fails, with one reader per CPU and at
// least two, so that one receives while the other answers. conn is closed when it returns.
func (s *Server) ServeUDP(ctx context.Context, conn *net.UDPConn) error {
	defer conn.Close()
	defer onDone(ctx, func() { conn.Close() })()
	worker, release, err := s.udpWorkers(ctx, conn)
	if err != nil {
		return err
	}
	defer release()
	workers := max(2, runtime.GOMAXPROCS(0))
	errs := make(chan error, workers)
	for range workers {
		go func() { errs <- worker() }()
	}
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
			conn.Close()
		}
	}
	return first
}

func (s *Server) udpWorker(ctx context.Context, conn *net.UDPConn) error {
	buf := make([]byte, 65535)
	out := make([]byte, 0, 65535)
	var q query
	for {
		n, addr, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read udp: %w", err)
		}
		start := time.Now()
		resp, v, source := s.answer(&q, buf[:n], out, true)
		switch v {
		case verdictDrop:
			s.cfg.Metrics.dropped.Inc()
			continue
		case verdictUpstream:
			msg := append([]byte(nil), buf[:n]...)
			pending := q
			go func() {
				resp, rcode := s.resolveUpstream(ctx, &pending, msg, true)
				if _, err := conn.WriteToUDPAddrPort(resp, addr); err == nil {
					s.cfg.Metrics.observe(pending.qtype, rcode, SourceUpstream, start)
				}
			}()
			continue
		}
		if _, err := conn.WriteToUDPAddrPort(resp, addr); err != nil {
			continue
		}
		s.cfg.Metrics.observe(q.qtype, rcodeOf(resp, &q), source, start)
	}
}

// onDone runs f once ctx ends, on a goroutine of its own, as context.AfterFunc does; the
// function it returns, called as a Serve method returns, cancels f or waits for an f already
// running. Without that wait a socket f closes could still be open after Serve returned (a
// second Close returns at once while the first is under way), and whoever binds the port
// again would find it held.
func onDone(ctx context.Context, f func()) func() {
	finished := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(finished)
		f()
	})
	return func() {
		if !stop() {
			<-finished
		}
	}
}

// rcodeOf reads the full rcode of a response written by the hot path.
func rcodeOf(resp []byte, q *query) int {
	rcode := int(resp[3] & 0xF)
	if q.edns && q.ednsVersion != 0 && rcode == 0 {
		return dns.RcodeBadVers
	}
	return rcode
}

// ServeTCP answers queries on connections accepted from ln until ctx ends or ln fails.
func (s *Server) ServeTCP(ctx context.Context, ln net.Listener) error {
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	defer onDone(ctx, func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	})()
	slots := make(chan struct{}, s.cfg.MaxTCPConnections)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept tcp: %w", err)
		}
		select {
		case slots <- struct{}{}:
		default:
			c.Close()
			continue
		}
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			c.Close()
			return nil
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			defer func() {
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				<-slots
			}()
			s.serveConn(ctx, c)
		})
	}
}

// serveConn answers length-prefixed queries on one TCP connection, in order.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	r := bufio.NewReader(c)
	msg := make([]byte, 65535)
	out := make([]byte, 0, 65537)
	var q query
	for {
		c.SetReadDeadline(time.Now().Add(s.cfg.TCPIdleTimeout))
		var prefix [2]byte
		if _, err := io.ReadFull(r, prefix[:]); err != nil {
			return
		}
		n := int(be16(prefix[:]))
		if n == 0 {
			return
		}
		if _, err := io.ReadFull(r, msg[:n]); err != nil {
			return
		}
		start := time.Now()
		resp, v, source := s.answer(&q, msg[:n], out[2:2], false)
		rcode := 0
		switch v {
		case verdictDrop:
			s.cfg.Metrics.dropped.Inc()
			continue
		case verdictUpstream:
			resp, rcode = s.resolveUpstream(ctx, &q, msg[:n], false)
		default:
			rcode = rcodeOf(resp, &q)
		}
		frame := out[:2]
		put16(frame, uint16(len(resp)))
		frame = append(frame, resp...)
		c.SetWriteDeadline(time.Now().Add(s.cfg.TCPIdleTimeout))
		if _, err := c.Write(frame); err != nil {
			return
		}
		s.cfg.Metrics.observe(q.qtype, rcode, source, start)
	}
}
