package cluster

import (
	"context"
	"io"
	"log"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// balancer is the lab's load balancer in front of its kube-apiserver replicas, as a cloud's TCP
// load balancer is: it listens on 127.0.0.1 (the kubeconfig's server) and hands each new
// connection to the next ready replica in turn. Balancing is per connection, not per request:
// a client's requests all go to the replica its connection reached (client-go multiplexes them
// over one HTTP/2 connection), so a fleet's load spreads only as its connections do, and
// unevenly. A replica is ready once its /readyz answered ok since its process started, and
// until the process exits or the lab stops it (a cloud balancer's health check); connections
// to a replica end when it exits, and clients reconnect through the balancer to another.
// With --endpoint balancer it also listens at the one address the default/kubernetes
// EndpointSlice lists, in a network namespace of its own (see network.go).
type balancer struct {
	replicas []*apiserverReplica
	dial     dialFunc
	next     atomic.Uint64

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[net.Conn]balancedConn
	wg        sync.WaitGroup
}

// dialFunc connects to a replica: from the balancer's network namespace when it has one.
type dialFunc func(ctx context.Context, network, address string) (net.Conn, error)

type balancedConn struct {
	upstream net.Conn
	replica  int
}

// BalancedConnection is one client connection through the balancer and the replica it reached.
type BalancedConnection struct {
	// Client is the client's address as the balancer sees it: 127.0.0.1:port, or .1 of the
	// lab's /24 through the balanced address.
	Client  string `json:"client"`
	Replica int    `json:"replica"`
}

// startBalancer listens on address and balances over replicas, reached with dial, until close.
func startBalancer(address string, replicas []*apiserverReplica, dial dialFunc) (*balancer, error) {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, err
	}
	b := &balancer{replicas: replicas, dial: dial, conns: map[net.Conn]balancedConn{}}
	b.serve(ln)
	return b, nil
}

// serve balances the connections ln accepts, until close.
func (b *balancer) serve(ln net.Listener) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conns == nil { // closed
		ln.Close()
		return
	}
	b.listeners = append(b.listeners, ln)
	b.wg.Go(func() { b.accept(ln) })
}

func (b *balancer) accept(ln net.Listener) {
	for {
		client, err := ln.Accept()
		if err != nil {
			return
		}
		b.wg.Go(func() { b.handle(client) })
	}
}

func (b *balancer) handle(client net.Conn) {
	upstream, replica := b.connect()
	if upstream == nil {
		// No replica is ready: the client sees its connection closed, and retries.
		client.Close()
		return
	}
	b.mu.Lock()
	if b.conns == nil { // closing
		b.mu.Unlock()
		client.Close()
		upstream.Close()
		return
	}
	b.conns[client] = balancedConn{upstream: upstream, replica: replica}
	b.mu.Unlock()

	// Either side ending ends both: a replica that exits drops its clients, who reconnect.
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(upstream, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, upstream); done <- struct{}{} }()
	<-done
	client.Close()
	upstream.Close()
	<-done
	b.mu.Lock()
	delete(b.conns, client)
	b.mu.Unlock()
}

// connect dials the next ready replica, trying the others when one refuses.
func (b *balancer) connect() (net.Conn, int) {
	var ready []*apiserverReplica
	for _, r := range b.replicas {
		if r.isReady() {
			ready = append(ready, r)
		}
	}
	if len(ready) == 0 {
		return nil, -1
	}
	first := int(b.next.Add(1) - 1)
	for k := range ready {
		r := ready[(first+k)%len(ready)]
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := b.dial(ctx, "tcp", r.address)
		cancel()
		if err == nil {
			return conn, r.index
		}
		log.Printf("balancer: %s: %v", r.name(), err)
	}
	return nil, -1
}

// connections lists the open connections, ordered by replica and client.
func (b *balancer) connections() []BalancedConnection {
	b.mu.Lock()
	out := make([]BalancedConnection, 0, len(b.conns))
	for client, c := range b.conns {
		out = append(out, BalancedConnection{Client: client.RemoteAddr().String(), Replica: c.replica})
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Replica != out[j].Replica {
			return out[i].Replica < out[j].Replica
		}
		return out[i].Client < out[j].Client
	})
	return out
}

// close stops listening, drops every connection and waits for its goroutines, at most until
// ctx ends.
func (b *balancer) close(ctx context.Context) {
	b.mu.Lock()
	for _, ln := range b.listeners {
		ln.Close()
	}
	for client, c := range b.conns {
		client.Close()
		c.upstream.Close()
	}
	b.conns = nil
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
