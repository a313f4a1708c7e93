package cluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestFreeSubnetsSkipEveryOverlapWithThisMachine(t *testing.T) {
	first := func(inUse ...string) string {
		var prefixes []netip.Prefix
		for _, p := range inUse {
			prefixes = append(prefixes, netip.MustParsePrefix(p))
		}
		for i, subnet := range freeSubnets(prefixes) {
			return fmt.Sprintf("%s #%d", subnet, i)
		}
		return "none"
	}
	for _, tc := range []struct {
		name  string
		inUse []string
		want  string
	}{
		{"a machine on other networks", []string{"192.0.2.0/24", "10.0.0.0/8", "127.0.0.0/8"}, "198.18.0.0/24 #0"},
		{"another lab holds the first", []string{"198.18.0.0/24"}, "198.18.1.0/24 #1"},
		{"an address of this machine in the first", []string{"198.18.0.7/32"}, "198.18.1.0/24 #1"},
		{"a wider route covers the lower half", []string{"198.18.0.0/16"}, "198.19.0.0/24 #256"},
		{"everything taken", []string{"198.0.0.0/8"}, "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := first(tc.inUse...); got != tc.want {
				t.Errorf("first free subnet = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestToPrefixMasksRoutesAndAddresses(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		mask net.IPMask
		want string
	}{
		{"192.0.2.2", net.CIDRMask(24, 32), "192.0.2.0/24"},
		{"10.96.0.1", nil, "10.96.0.1/32"},
		{"198.18.3.1", net.CIDRMask(24, 32), "198.18.3.0/24"},
	} {
		got, ok := toPrefix(net.ParseIP(tc.ip).To4(), tc.mask)
		if !ok || got.String() != tc.want {
			t.Errorf("toPrefix(%s, %v) = %s %v, want %s", tc.ip, tc.mask, got, ok, tc.want)
		}
	}
}

func TestReplicaAddressesFollowTheHostEnd(t *testing.T) {
	n := &replicaNetwork{subnet: netip.MustParsePrefix("198.18.4.0/24")}
	for i, want := range map[int]string{0: "198.18.4.11", 1: "198.18.4.12", MaxAPIServers - 1: "198.18.4.19"} {
		if got := n.replica(i).String(); got != want {
			t.Errorf("replica(%d) = %s, want %s", i, got, want)
		}
	}
}

// With --endpoint balancer the lab's namespace reaches the balanced address and no replica;
// the balancer's namespace reaches every replica. Needs root, as --apiservers > 1 does.
func TestBalancedNetworkReachesReplicasOnlyThroughTheBalancer(t *testing.T) {
	n, err := newReplicaNetwork(2, true)
	if err != nil {
		t.Fatalf("the balanced network (run as root): %v", err)
	}
	defer func() {
		if err := n.close(); err != nil {
			t.Error(err)
		}
	}()
	serve := func(ln net.Listener) {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	for i := range 2 {
		address := net.JoinHostPort(n.replica(i).String(), strconv.Itoa(replicaPort))
		var ln net.Listener
		err := within(map[int]netns.NsHandle{unix.CLONE_NEWNET: n.namespaces[i]}, func() error {
			var err error
			ln, err = net.Listen("tcp", address)
			return err
		})
		if err != nil {
			t.Fatalf("listen in replica %d's namespace: %v", i, err)
		}
		defer ln.Close()
		serve(ln)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := n.dial(ctx, "tcp", address)
		cancel()
		if err != nil {
			t.Fatalf("the balancer's namespace does not reach replica %d at %s: %v", i, address, err)
		}
		conn.Close()
		// Without a packet: the lab's namespace has neither the replica's link nor a route through one.
		if _, err := netlink.LinkByName(n.links[i]); err == nil {
			t.Errorf("replica %d's link %s is in the lab's namespace, want it in the balancer's", i, n.links[i])
		}
		routes, err := netlink.RouteGet(n.replica(i).AsSlice())
		if err == nil && len(routes) > 0 {
			if link, err := netlink.LinkByIndex(routes[0].LinkIndex); err == nil && link.Attrs().Name == n.balancer.link {
				t.Errorf("the lab's namespace routes replica %d through the balancer's link %s", i, n.balancer.link)
			}
		}
	}
	ln, err := n.listenBalanced()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serve(ln)
	conn, err := net.DialTimeout("tcp", n.balancedAddress(), 5*time.Second)
	if err != nil {
		t.Fatalf("the lab's namespace does not reach the balanced address %s: %v", n.balancedAddress(), err)
	}
	conn.Close()
}
