package cluster

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// replicaNetwork gives the lab's kube-apiserver replicas addresses that an EndpointSlice accepts
// (it refuses loopback and link-local ones) without touching the machine's own network.
//
// Each replica gets a network namespace of its own, as a replica on its own machine has (its
// process_network_transmit_bytes_total counts its own traffic only), joined to the lab's
// namespace by a veth pair: the inner end carries the replica's address, .11 + i of the lab's
// /24; the outer end carries .1 of the same /24, as a /32, with a /32 route to the replica
// through it, so that clients on this machine (the balancer, tests, bulkhead, the emulator)
// reach each replica at the address the default/kubernetes EndpointSlice lists, from .1.
// Nothing else is routed: the namespaces have no default route and no other interface, so no
// packet of the lab reaches or leaves through the machine's interfaces.
//
// The /24 is taken from 198.18.0.0/15, the range RFC 2544 reserves for benchmarking networks:
// never routed on the internet and unlikely on a machine's own links. A /24 that any route or
// address of this machine overlaps is skipped, and so is one another running lab holds (the
// outer end of its first replica's link, named after the /24, exists): the name is the claim.
//
// The namespaces have no name in /var/run/netns: each lives as long as this process holds its
// handle or its replica runs inside it, so a lab killed with SIGKILL leaves none behind (its
// replicas die with it, see component), and the kernel then deletes the veth pairs with them.
//
// With --endpoint balancer the replicas sit behind one address, as a managed control plane's
// (EKS, GKE, AKS) do: the balancer gets a namespace of its own, joined to the lab's namespace by
// a veth pair (its address .10 inside, .1 as a /32 with a /32 route to .10 outside), and the
// replicas' outer ends live in that namespace instead of the lab's, without an address, each
// with a /32 route to its replica. The lab's namespace then has a route to .10 alone: clients on
// this machine cannot reach a replica, only the balancer, which listens at .10 (and on
// 127.0.0.1) and dials the replicas from its own namespace; so do the lab's own health checks.
type replicaNetwork struct {
	// namespaces and links are per replica: its namespace and the outer end of its veth pair.
	namespaces []netns.NsHandle
	links      []string
	// subnet is the lab's /24; host is .1, the outer ends' address; replicas follow from .11.
	subnet netip.Prefix
	host   netip.Addr
	// inodes identify the namespaces ("net:[4026532...]"), for status and leak checks.
	inodes []string
	// balancer is the balanced address's namespace with --endpoint balancer; nil otherwise.
	balancer *balancerNetwork
}

// balancerNetwork is the namespace in which the balancer listens at the one address the
// default/kubernetes EndpointSlice lists, and from which replicas are reached.
type balancerNetwork struct {
	namespace netns.NsHandle
	inode     string
	// link is the outer end of its veth pair, in the lab's namespace; it claims the /24.
	link string
}

// replicaPort is every replica's secure port, as in a production control plane: the
// kubernetes Service has one targetPort, which every replica's bootstrap controller writes.
const replicaPort = 6443

var labSupernet = netip.MustParsePrefix("198.18.0.0/15")

// newReplicaNetwork creates a namespace and a link for each of replicas replicas, and with
// balanced the balancer's namespace in front of them.
func newReplicaNetwork(replicas int, balanced bool) (*replicaNetwork, error) {
	n := &replicaNetwork{}
	fail := func(err error) (*replicaNetwork, error) {
		if cerr := n.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	for range replicas {
		ns, inode, err := newNetNamespace()
		if err != nil {
			return fail(fmt.Errorf("--apiservers %d needs network namespaces of its own (run as root): %w", replicas, err))
		}
		n.namespaces, n.inodes = append(n.namespaces, ns), append(n.inodes, inode)
	}
	if balanced {
		ns, inode, err := newNetNamespace()
		if err != nil {
			return fail(fmt.Errorf("--endpoint %s needs a network namespace for the balancer (run as root): %w", EndpointBalancer, err))
		}
		n.balancer = &balancerNetwork{namespace: ns, inode: inode}
	}
	inUse, err := prefixesInUse()
	if err != nil {
		return fail(err)
	}
	outside, err := netlink.NewHandle()
	if err != nil {
		return fail(fmt.Errorf("netlink: %w", err))
	}
	defer outside.Close()
	// The first link made in the lab's namespace claims the /24: the balancer's, or replica 0's.
	claimNS := n.namespaces[0]
	if n.balancer != nil {
		claimNS = n.balancer.namespace
	}
	for number, subnet := range freeSubnets(inUse) {
		name := fmt.Sprintf("bhlab%d", number)
		claimed, err := addVeth(outside, name, claimNS)
		if err != nil {
			return fail(err)
		}
		if claimed {
			n.subnet, n.host = subnet, subnet.Addr().Next()
			if n.balancer != nil {
				n.balancer.link = name
			} else {
				n.links = append(n.links, name)
			}
			break
		}
	}
	if !n.subnet.IsValid() {
		return fail(fmt.Errorf("no free /24 in %s for the replica network: every one is in use by this machine or another lab", labSupernet))
	}
	// The replicas' outer ends, and the address clients' packets come from: the lab's
	// namespace and .1, or the balancer's namespace and its own address (the ends have none).
	front, source, prefix := outside, netip.PrefixFrom(n.host, 32), ""
	if n.balancer == nil {
		prefix = n.links[0]
	} else {
		if front, err = netlink.NewHandleAt(n.balancer.namespace); err != nil {
			return fail(fmt.Errorf("netlink in the balancer's network namespace: %w", err))
		}
		defer front.Close()
		source, prefix = netip.Prefix{}, n.balancer.link
		if err := configurePair(outside, n.balancer.link, netip.PrefixFrom(n.host, 32), n.balancer.namespace, n.balancerAddress(), n.subnet.Bits()); err != nil {
			return fail(fmt.Errorf("the balancer's network: %w", err))
		}
	}
	for i := len(n.links); i < replicas; i++ {
		name := fmt.Sprintf("%sr%d", prefix, i)
		if _, err := addVeth(front, name, n.namespaces[i]); err != nil {
			return fail(fmt.Errorf("replica %d: %w", i, err))
		}
		n.links = append(n.links, name)
	}
	for i := range replicas {
		if err := configurePair(front, n.links[i], source, n.namespaces[i], n.replica(i), n.subnet.Bits()); err != nil {
			return fail(fmt.Errorf("replica %d's network: %w", i, err))
		}
	}
	return n, nil
}

// newNetNamespace creates a network namespace and returns its handle and its inode
// ("net:[4026532...]").
func newNetNamespace() (netns.NsHandle, string, error) {
	ns, err := newNamespace(unix.CLONE_NEWNET, nil)
	if err != nil {
		return ns, "", err
	}
	inode, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", int(ns)))
	if err != nil {
		ns.Close()
		return netns.None(), "", fmt.Errorf("network namespace: %w", err)
	}
	return ns, inode, nil
}

// addVeth creates a veth pair, its end name in h's namespace and its other end, eth0, in peer;
// false when the name exists.
func addVeth(h *netlink.Handle, name string, peer netns.NsHandle) (bool, error) {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: innerLinkName, PeerNamespace: netlink.NsFd(int(peer))}
	err := h.LinkAdd(veth)
	if errors.Is(err, unix.EEXIST) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create the veth pair %s: %w", name, err)
	}
	return true, nil
}

// configurePair brings up the veth pair whose outer end is name in outer's namespace, with
// outerAddr (none when invalid) and a /32 route through it to inner, the address of its other
// end, eth0 in namespace ns, in a /bits.
func configurePair(outer *netlink.Handle, name string, outerAddr netip.Prefix, ns netns.NsHandle, inner netip.Addr, bits int) error {
	link, err := outer.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := configureLink(outer, link, outerAddr); err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: &net.IPNet{IP: inner.AsSlice(), Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK}
	if err := outer.RouteAdd(route); err != nil {
		return fmt.Errorf("route to %s through %s: %w", inner, name, err)
	}
	inside, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s's network namespace: %w", inner, err)
	}
	defer inside.Close()
	lo, err := inside.LinkByName("lo")
	if err == nil {
		err = inside.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("loopback of %s's network namespace: %w", inner, err)
	}
	peer, err := inside.LinkByName(innerLinkName)
	if err != nil {
		return fmt.Errorf("link %s of %s: %w", innerLinkName, inner, err)
	}
	if err := configureLink(inside, peer, netip.PrefixFrom(inner, bits)); err != nil {
		return fmt.Errorf("link %s of %s: %w", innerLinkName, inner, err)
	}
	return nil
}

// innerLinkName is the end of a veth pair inside a replica's or the balancer's namespace.
const innerLinkName = "eth0"

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

func toPrefix(ip net.IP, mask net.IPMask) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	ones := 32
	if mask != nil {
		ones, _ = mask.Size()
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
// adds addr unless it is invalid and brings the link up.
func configureLink(h *netlink.Handle, link netlink.Link, addr netip.Prefix) error {
	if err := h.LinkSetIP6AddrGenMode(link, nl.IN6_ADDR_GEN_MODE_NONE); err != nil && !errors.Is(err, unix.EAFNOSUPPORT) {
		return fmt.Errorf("turn off IPv6 address generation: %w", err)
	}
	if addr.IsValid() {
		a, err := netlink.ParseAddr(addr.String())
		if err != nil {
			return err
		}
		if err := h.AddrAdd(link, a); err != nil {
			return fmt.Errorf("add %s: %w", addr, err)
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

// balancerAddress is the balanced address, .10, with --endpoint balancer.
func (n *replicaNetwork) balancerAddress() netip.Addr {
	a := n.subnet.Addr().As4()
	a[3] = 10
	return netip.AddrFrom4(a)
}

// dial connects to a replica from the balancer's namespace when there is one (the lab's own
// namespace has no route to the replicas then), else from the lab's.
func (n *replicaNetwork) dial(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	if n.balancer == nil {
		return d.DialContext(ctx, network, address)
	}
	var conn net.Conn
	// The socket belongs to the namespace of the thread that creates it, for its whole life.
	err := within(map[int]netns.NsHandle{unix.CLONE_NEWNET: n.balancer.namespace}, func() error {
		var err error
		conn, err = d.DialContext(ctx, network, address)
		return err
	})
	if err != nil && conn != nil {
		conn.Close()
	}
	return conn, err
}

// balancedAddress is host:port where the balancer listens in its namespace, as the
// default/kubernetes EndpointSlice lists it.
func (n *replicaNetwork) balancedAddress() string {
	return net.JoinHostPort(n.balancerAddress().String(), strconv.Itoa(replicaPort))
}

// listenBalanced listens at the balanced address, inside the balancer's namespace.
func (n *replicaNetwork) listenBalanced() (net.Listener, error) {
	var ln net.Listener
	address := n.balancedAddress()
	err := within(map[int]netns.NsHandle{unix.CLONE_NEWNET: n.balancer.namespace}, func() error {
		var err error
		ln, err = net.Listen("tcp", address)
		return err
	})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, fmt.Errorf("listen at the balanced address %s: %w", address, err)
	}
	return ln, nil
}

// close deletes the veth pairs (both ends go together) and drops the namespace handles; each
// namespace itself goes when its replica has exited (the balancer's, with the replicas' outer
// ends in it, when its listener is closed).
func (n *replicaNetwork) close() error {
	var errs []error
	links := n.links
	if n.balancer != nil {
		links = nil
		if n.balancer.link != "" {
			links = []string{n.balancer.link}
		}
	}
	for _, name := range links {
		link, err := netlink.LinkByName(name)
		if err == nil {
			err = netlink.LinkDel(link)
		}
		var notFound netlink.LinkNotFoundError
		if err != nil && !errors.As(err, &notFound) {
			errs = append(errs, fmt.Errorf("delete replica network link %s: %w", name, err))
		}
	}
	for _, ns := range n.namespaces {
		if err := ns.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close replica network namespace: %w", err))
		}
	}
	if n.balancer != nil {
		if err := n.balancer.namespace.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close the balancer's network namespace: %w", err))
		}
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
