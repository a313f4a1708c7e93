package cluster

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
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
