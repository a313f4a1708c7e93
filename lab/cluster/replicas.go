package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-dev/bulkhead/lab/pki"
)

// apiserverReplica is one kube-apiserver process. With one replica it listens on 127.0.0.1 and
// is the kubeconfig's server; with more, each listens on its own address inside a network
// namespace of its own, with its own hostname (so its own identity lease), serving certificate,
// /metrics, APF seats and, with limits, its own cgroup.
type apiserverReplica struct {
	index int
	// several is true when the lab runs more than one replica.
	several bool
	// address is host:port, where the replica listens and clients reach it directly.
	address string
	proc    *component
	// direct talks to this replica alone, as admin: readiness and status.
	direct kubernetes.Interface
	cgroup *limitCgroup
	uts    netns.NsHandle // netns.None() with one replica

	mu sync.Mutex
	// launch counts starts and exits, so that a /readyz answer from an earlier process does not
	// make a later one ready.
	launch    uint64
	ready     bool
	lastProbe error
}

func (r *apiserverReplica) name() string {
	if !r.several {
		return "kube-apiserver"
	}
	return "kube-apiserver-" + strconv.Itoa(r.index)
}

// newReplicas prepares (does not start) the lab's replicas.
func (l *lab) newReplicas(ctx context.Context, etcdURL string) ([]*apiserverReplica, error) {
	replicas := make([]*apiserverReplica, l.opts.APIServers)
	for i := range replicas {
		r := &apiserverReplica{index: i, several: l.network != nil, uts: netns.None()}
		replicas[i] = r
		host := "127.0.0.1"
		port := l.port
		if l.network != nil {
			host, port = l.network.replica(i).String(), replicaPort
		}
		r.address = net.JoinHostPort(host, strconv.Itoa(port))
		directConfig := restConfig("https://"+r.address, l.bundle, "admin", 5, 10)
		if l.network != nil {
			// Behind a balanced address only the balancer's namespace reaches the replicas.
			directConfig.Dial = l.network.dial
		}
		direct, err := kubernetes.NewForConfig(directConfig)
		if err != nil {
			return replicas, fmt.Errorf("client for %s: %w", r.name(), err)
		}
		r.direct = direct
		servingName := "apiserver"
		if l.network != nil {
			servingName = fmt.Sprintf("apiserver-%d", i)
			hostname := r.name()
			r.uts, err = newNamespace(unix.CLONE_NEWUTS, func() error { return unix.Sethostname([]byte(hostname)) })
			if err != nil {
				return replicas, fmt.Errorf("%s: own hostname: %w", hostname, err)
			}
		}
		logPath := filepath.Join(l.dir, r.name()+".log")
		r.proc = newComponent("kube-apiserver", logPath, l.apiserverArgs(etcdURL, host, port, servingName))
		if l.network != nil {
			namespaces := map[int]netns.NsHandle{unix.CLONE_NEWNET: l.network.namespaces[i], unix.CLONE_NEWUTS: r.uts}
			r.proc.spawn = func(start func() error) error { return within(namespaces, start) }
		}
		if l.opts.APIServerMemoryLimit > 0 || l.opts.APIServerCPUs > 0 {
			r.cgroup, err = newLimitCgroup(fmt.Sprintf("bulkhead-lab-%d-%s", os.Getpid(), r.name()), l.opts.APIServerMemoryLimit, l.opts.APIServerCPUs)
			if err != nil {
				return replicas, err
			}
		}
		r.proc.onStart = func(pid int) error {
			if r.cgroup != nil {
				if err := r.cgroup.add(pid); err != nil {
					return err
				}
			}
			go r.awaitReady(ctx, r.launched())
			return nil
		}
		r.proc.onExit = func() { r.launched() }
	}
	return replicas, nil
}

// close stops the replica for good and removes what it owned.
func (r *apiserverReplica) close(grace time.Duration) error {
	if r.proc != nil {
		r.proc.close(grace)
	}
	var errs []error
	if r.cgroup != nil {
		if err := r.cgroup.remove(); err != nil {
			errs = append(errs, fmt.Errorf("remove %s cgroup: %w", r.name(), err))
		}
	}
	if r.uts != netns.None() {
		errs = append(errs, r.uts.Close())
	}
	return errors.Join(errs...)
}

// launched records a start or an exit: the replica is not ready until a new /readyz says so.
func (r *apiserverReplica) launched() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.launch++
	r.ready = false
	return r.launch
}

func (r *apiserverReplica) isReady() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready
}

// stopReplica takes the replica out of the balancer and stops its process; it stays down.
func (r *apiserverReplica) stopReplica(grace time.Duration) {
	r.launched()
	r.proc.stop(grace)
}

// awaitReady polls the replica's /readyz until it answers ok, then lets the balancer use it,
// unless the process it was started for has exited meanwhile.
func (r *apiserverReplica) awaitReady(ctx context.Context, launch uint64) {
	for {
		probeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		body, err := r.direct.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(probeCtx)
		cancel()
		if err == nil && string(body) != "ok" {
			err = fmt.Errorf("/readyz answered %q", body)
		}
		r.mu.Lock()
		if r.launch != launch {
			r.mu.Unlock()
			return
		}
		r.lastProbe = err
		r.ready = err == nil
		r.mu.Unlock()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitReady waits until the replica is ready or timeout passes.
func (r *apiserverReplica) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !r.isReady() {
		if time.Now().After(deadline) {
			r.mu.Lock()
			last := r.lastProbe
			r.mu.Unlock()
			return fmt.Errorf("%s not ready after %s (last error: %v); see %s", r.name(), timeout, last, r.proc.logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// answersReadyz asks the replica directly whether it is ready.
func (r *apiserverReplica) answersReadyz(ctx context.Context) bool {
	probeCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	body, err := r.direct.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(probeCtx)
	return err == nil && string(body) == "ok"
}

// servingIdentities are the serving certificates the replicas need: each is valid for its own
// address, for 127.0.0.1 (the balancer, or the one replica, that clients dial by the
// kubeconfig), for the balanced address with --endpoint balancer and for the kubernetes
// Service's ClusterIP and names.
func (l *lab) servingIdentities() []pki.Serving {
	names := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	common := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")}
	if l.network == nil {
		return []pki.Serving{{Name: "apiserver", IPs: common, DNSNames: names}}
	}
	if l.network.balancer != nil {
		common = append(common, l.network.balancerAddress().AsSlice())
	}
	out := make([]pki.Serving, l.opts.APIServers)
	for i := range out {
		own := l.network.replica(i).AsSlice()
		out[i] = pki.Serving{Name: fmt.Sprintf("apiserver-%d", i), IPs: append([]net.IP{own}, common...), DNSNames: names}
	}
	return out
}

// publishReplicas writes the default/kubernetes EndpointSlice listing every replica, as the
// apiservers' own endpoint reconciler would (they run with --endpoint-reconciler-type=none: it
// refuses loopback addresses, which the one-replica lab has). The lab lists every replica it
// runs, stopped or not, as a fixed set of control-plane machines does until someone removes
// one: a stopped replica is listed and unreachable. With --endpoint balancer it lists the
// balanced address alone, as a managed control plane's does.
func (l *lab) publishReplicas(ctx context.Context) error {
	ready, https, port, tcp := true, "https", int32(replicaPort), corev1.ProtocolTCP
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "kubernetes",
			Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: "kubernetes",
				discoveryv1.LabelManagedBy:   "bulkhead-lab",
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &https, Port: &port, Protocol: &tcp}},
	}
	var addresses []string
	if l.network.balancer != nil {
		addresses = append(addresses, l.network.balancerAddress().String())
	} else {
		for i := range l.replicas {
			addresses = append(addresses, l.network.replica(i).String())
		}
	}
	for _, a := range addresses {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{a},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		})
	}
	slices := l.client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault)
	_, err := slices.Create(ctx, slice, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		var existing *discoveryv1.EndpointSlice
		if existing, err = slices.Get(ctx, slice.Name, metav1.GetOptions{}); err == nil {
			slice.ResourceVersion = existing.ResourceVersion
			_, err = slices.Update(ctx, slice, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("publish %v in EndpointSlice default/kubernetes: %w", addresses, err)
	}
	return nil
}
