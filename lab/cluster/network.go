package cluster

import (
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"os"
	"runtime"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// replicaNetwork gives the lab's kube-apiserver replicas addresses that an EndpointSlice accepts
// (it refuses loopback and link-local ones) without touching the machine's own network.
//
// The lab creates a network namespace and a veth pair: one end inside the namespace carries
// every replica's address, the other end stays in the lab's own namespace with one address of
// the same /24, so that clients on this machine (the balancer, tests, bulkhead, the emulator)
// reach each replica at the address the default/kubernetes EndpointSlice lists. Nothing else
// is routed: the namespace has no default route and no other interface, so no packet of the
// lab reaches or leaves through the machine's interfaces.
//
// The /24 is taken from 198.18.0.0/15, the range RFC 2544 reserves for benchmarking networks:
// never routed on the internet and unlikely on a machine's own links. A /24 that any route or
// address of this machine overlaps is skipped, and so is one another running lab holds (its
// host interface, named after the /24, exists): the name is the claim.
//
// The namespace has no name in /var/run/netns: it lives as long as this process holds its
// handle or a replica runs inside it, so a lab killed with SIGKILL leaves none behind (its
// replicas die with it, see component), and the kernel then deletes the veth pair with it.
type replicaNetwork struct {
	ns   netns.NsHandle
	link string
	// subnet is the lab's /24; host is its address on the host end; replicas follow from .11.
	subnet netip.Prefix
	host   netip.Addr
	// inode identifies the namespace ("net:[4026532...]"), for status and leak checks.
	inode string
}

// replicaPort is every replica's secure port, as in a production control plane: the
// kubernetes Service has one targetPort, which every replica's bootstrap controller writes.
const replicaPort = 6443

var labSupernet = netip.MustParsePrefix("198.18.0.0/15")

// newReplicaNetwork creates the namespace and links, with addresses for replicas replicas.
func newReplicaNetwork(replicas int) (*replicaNetwork, error) {
	ns, err := newNamespace(unix.CLONE_NEWNET, nil)
	if err != nil {
		return nil, fmt.Errorf("--apiservers %d needs its own network namespace (run as root): %w", replicas, err)
	}
	n := &replicaNetwork{ns: ns}
	fail := func(err error) (*replicaNetwork, error) {
		if cerr := n.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	if n.inode, err = os.Readlink(fmt.Sprintf("/proc/self/fd/%d", int(ns))); err != nil {
		return fail(fmt.Errorf("replica network namespace: %w", err))
	}
	inside, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fail(fmt.Errorf("netlink in the replica network namespace: %w", err))
	}
	defer inside.Close()
	lo, err := inside.LinkByName("lo")
	if err == nil {
		err = inside.LinkSetUp(lo)
	}
	if err != nil {
		return fail(fmt.Errorf("loopback of the replica network namespace: %w", err))
	}
	if err := n.claimSubnet(); err != nil {
		return fail(err)
	}

	outside, err := netlink.NewHandle()
	if err != nil {
		return fail(fmt.Errorf("netlink: %w", err))
	}
	defer outside.Close()
	host, err := outside.LinkByName(n.link)
	if err != nil {
		return fail(fmt.Errorf("replica network link %s: %w", n.link, err))
	}
	if err := configureLink(outside, host, []netip.Addr{n.host}); err != nil {
		return fail(fmt.Errorf("replica network link %s: %w", n.link, err))
	}
	peer, err := inside.LinkByName(replicaLinkName)
	if err != nil {
		return fail(fmt.Errorf("replica network link %s: %w", replicaLinkName, err))
	}
	addrs := make([]netip.Addr, replicas)
	for i := range addrs {
		addrs[i] = n.replica(i)
	}
	if err := configureLink(inside, peer, addrs); err != nil {
		return fail(fmt.Errorf("replica network link %s: %w", replicaLinkName, err))
	}
	return n, nil
}

// replicaLinkName is the namespace's end of the veth pair.
const replicaLinkName = "eth0"

// claimSubnet picks the first /24 of labSupernet that no route or address of this machine
// overlaps and creates the veth pair named after it; a name that exists belongs to another lab.
func (n *replicaNetwork) claimSubnet() error {
	inUse, err := prefixesInUse()
	if err != nil {
		return err
	}
	for i, subnet := range freeSubnets(inUse) {
		name := fmt.Sprintf("bhlab%d", i)
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: replicaLinkName, PeerNamespace: netlink.NsFd(int(n.ns))}
		err := netlink.LinkAdd(veth)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return fmt.Errorf("create the replica network's veth pair %s: %w", name, err)
		}
		n.link, n.subnet = name, subnet
		n.host = subnet.Addr().Next()
		return nil
	}
	return fmt.Errorf("no free /24 in %s for the replica network: every one is in use by this machine or another lab", labSupernet)
}

// prefixesInUse lists the IPv4 destinations of every route (all tables) and every address of
// this machine's network namespace; default routes are left out, since they overlap everything.
func prefixesInUse() ([]netip.Prefix, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list this machine's routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if p, ok := toPrefix(r.Dst.IP, r.Dst.Mask); ok && p.Bits() > 0 {
			out = append(out, p)
		}
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list this machine's addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := toPrefix(a.IP, a.Mask); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

func toPrefix(ip []byte, mask []byte) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	ones := 32
	if mask != nil {
		ones = 0
		for _, b := range mask {
			for ; b != 0; b <<= 1 {
				ones++
			}
		}
	}
	return netip.PrefixFrom(addr.Unmap(), ones).Masked(), true
}

// freeSubnets yields the /24s of labSupernet, with their number within it, that overlap none
// of inUse.
func freeSubnets(inUse []netip.Prefix) iter.Seq2[int, netip.Prefix] {
	return func(yield func(int, netip.Prefix) bool) {
		base := labSupernet.Addr().As4()
		for i := range 1 << (24 - labSupernet.Bits()) {
			subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{base[0], base[1] + byte(i>>8), byte(i), 0}), 24)
			if !slices.ContainsFunc(inUse, subnet.Overlaps) && !yield(i, subnet) {
				return
			}
		}
	}
}

// configureLink turns off IPv6 address generation (the lab needs no link-local addresses),
// adds addrs within the lab's /24 and brings the link up.
func configureLink(h *netlink.Handle, link netlink.Link, addrs []netip.Addr) error {
	if err := h.LinkSetIP6AddrGenMode(link, nl.IN6_ADDR_GEN_MODE_NONE); err != nil && !errors.Is(err, unix.EAFNOSUPPORT) {
		return fmt.Errorf("turn off IPv6 address generation: %w", err)
	}
	for _, a := range addrs {
		addr, err := netlink.ParseAddr(netip.PrefixFrom(a, 24).String())
		if err != nil {
			return err
		}
		if err := h.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("add %s: %w", a, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	return nil
}

// replica is the address of replica i.
func (n *replicaNetwork) replica(i int) netip.Addr {
	a := n.subnet.Addr().As4()
	a[3] = byte(11 + i)
	return netip.AddrFrom4(a)
}

// close deletes the veth pair (both ends go together) and drops the namespace handle; the
// namespace itself goes when its last replica has exited.
func (n *replicaNetwork) close() error {
	var errs []error
	if n.link != "" {
		link, err := netlink.LinkByName(n.link)
		if err == nil {
			err = netlink.LinkDel(link)
		}
		var notFound netlink.LinkNotFoundError
		if err != nil && !errors.As(err, &notFound) {
			errs = append(errs, fmt.Errorf("delete replica network link %s: %w", n.link, err))
		}
	}
	if err := n.ns.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close replica network namespace: %w", err))
	}
	return errors.Join(errs...)
}

// newNamespace creates a namespace of kind (unix.CLONE_NEWNET, unix.CLONE_NEWUTS), runs setup
// inside it when given, and returns a handle to it; the calling thread is back in its own
// namespace when it returns.
func newNamespace(kind int, setup func() error) (netns.NsHandle, error) {
	runtime.LockOSThread()
	own, err := threadNamespace(kind)
	if err != nil {
		runtime.UnlockOSThread()
		return netns.None(), err
	}
	defer own.Close()
	if err := unix.Unshare(kind); err != nil {
		runtime.UnlockOSThread()
		return netns.None(), fmt.Errorf("unshare: %w", err)
	}
	created, err := threadNamespace(kind)
	if err == nil && setup != nil {
		err = setup()
	}
	if restoreErr := netns.Setns(own, kind); restoreErr != nil {
		// The thread stays locked, so Go retires it with this goroutine and nothing else runs
		// in the new namespace.
		created.Close()
		return netns.None(), errors.Join(err, fmt.Errorf("return to the lab's own namespace: %w", restoreErr))
	}
	runtime.UnlockOSThread()
	if err != nil {
		created.Close()
		return netns.None(), err
	}
	return created, nil
}

// within runs fn on a thread inside the given namespaces (kind → handle) and returns the
// thread to its own namespaces afterwards. A process fn starts is born inside them: Go forks
// from the calling thread, whose namespaces the child inherits (see os.StartProcess).
func within(namespaces map[int]netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	restore := map[int]netns.NsHandle{}
	defer func() {
		for _, h := range restore {
			h.Close()
		}
	}()
	back := func() error {
		var errs []error
		for kind, h := range restore {
			if err := netns.Setns(h, kind); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			// Locked threads end with their goroutine: nothing else ever runs in these namespaces.
			return fmt.Errorf("return to the lab's own namespaces: %w", errors.Join(errs...))
		}
		runtime.UnlockOSThread()
		return nil
	}
	for kind, h := range namespaces {
		own, err := threadNamespace(kind)
		if err != nil {
			return errors.Join(err, back())
		}
		restore[kind] = own
		if err := netns.Setns(h, kind); err != nil {
			return errors.Join(fmt.Errorf("enter namespace: %w", err), back())
		}
	}
	err := fn()
	return errors.Join(err, back())
}

// threadNamespace opens the calling thread's namespace of kind.
func threadNamespace(kind int) (netns.NsHandle, error) {
	name := map[int]string{unix.CLONE_NEWNET: "net", unix.CLONE_NEWUTS: "uts"}[kind]
	h, err := netns.GetFromPath(fmt.Sprintf("/proc/%d/task/%d/ns/%s", os.Getpid(), unix.Gettid(), name))
	if err != nil {
		return netns.None(), fmt.Errorf("open this thread's %s namespace: %w", name, err)
	}
	return h, nil
}
