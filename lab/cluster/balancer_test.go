package cluster

import (
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// backends listens on n loopback ports; each connection reads one line's worth and answers
// with the backend's index.
func backends(t *testing.T, n int) []*apiserverReplica {
	t.Helper()
	var out []*apiserverReplica
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_, _ = c.Write([]byte(strconv.Itoa(i)))
					_, _ = io.Copy(io.Discard, c)
				}()
			}
		}()
		out = append(out, &apiserverReplica{index: i, address: ln.Addr().String(), uts: netns.None(), ready: true})
	}
	return out
}

func reached(t *testing.T, b *balancer) int {
	t.Helper()
	c, err := net.Dial("tcp", b.listeners[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 8)
	n, err := c.Read(buf)
	if err != nil {
		return -1
	}
	i, _ := strconv.Atoi(string(buf[:n]))
	return i
}

func TestBalancerHandsConnectionsToReadyReplicasInTurn(t *testing.T) {
	replicas := backends(t, 3)
	b, err := startBalancer("127.0.0.1:0", replicas, (&net.Dialer{}).DialContext)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close(context.Background())

	count := map[int]int{}
	for range 6 {
		count[reached(t, b)]++
	}
	if count[0] != 2 || count[1] != 2 || count[2] != 2 {
		t.Errorf("6 connections over 3 ready replicas reached %v, want 2 each", count)
	}

	replicas[1].launched() // not ready until its /readyz says so
	count = map[int]int{}
	for range 6 {
		count[reached(t, b)]++
	}
	if count[1] != 0 || count[0] != 3 || count[2] != 3 {
		t.Errorf("with replica 1 not ready, 6 connections reached %v, want 3 each on 0 and 2", count)
	}
	if got := len(b.connections()); got != 12 {
		t.Errorf("the balancer lists %d open connections, want 12", got)
	}

	for _, r := range replicas {
		r.launched()
	}
	if got := reached(t, b); got != -1 {
		t.Errorf("with no replica ready a connection reached replica %d, want it closed", got)
	}
}

func TestBalancerDropsClientsOfAReplicaThatGoesAway(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstream := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			upstream <- c
		}
	}()
	b, err := startBalancer("127.0.0.1:0", []*apiserverReplica{{address: ln.Addr().String(), uts: netns.None(), ready: true}}, (&net.Dialer{}).DialContext)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close(context.Background())
	client, err := net.Dial("tcp", b.listeners[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	(<-upstream).Close()
	ln.Close()
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client read after its replica went away: %v, want EOF", err)
	}
}
