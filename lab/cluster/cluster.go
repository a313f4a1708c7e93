package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/bulkhead-dev/bulkhead/lab/behavior"
	"github.com/bulkhead-dev/bulkhead/lab/pki"
)

// ReadyPrefix starts the line Up prints on stdout once the lab is usable.
const ReadyPrefix = "bulkhead-lab: ready"

type lab struct {
	opts  Options
	dir   string
	port  int
	start time.Time

	bundle     *pki.Bundle
	server     string
	kubeconfig string
	admin      *rest.Config
	client     kubernetes.Interface

	// network and balancer exist with more than one replica.
	network                      *replicaNetwork
	replicas                     []*apiserverReplica
	balancer                     *balancer
	controllerManager, scheduler *component
	// prometheus exists with --prometheus.
	prometheus *prometheusServer

	stats       *behavior.Stats
	nodes, pods cache.SharedIndexInformer
	startup     time.Duration
}

// Up starts a lab, prints progress to progress and the ready line to out, and runs until ctx
// ends; then it stops every component and leaves nothing running or listening.
func Up(ctx context.Context, opts Options, out, progress io.Writer) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	dir, err := absDir(opts.Dir)
	if err != nil {
		return err
	}
	if err := checkDir(dir); err != nil {
		return err
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	port, err := reservePort(opts.Port)
	if err != nil {
		return err
	}
	l := &lab{opts: opts, dir: dir, port: port, start: time.Now(), stats: behavior.NewStats()}
	return l.run(ctx, out, progress)
}

func (l *lab) run(ctx context.Context, out, progress io.Writer) error {
	say := func(format string, args ...any) {
		fmt.Fprintf(progress, "bulkhead-lab: %5.1fs "+format+"\n", append([]any{time.Since(l.start).Seconds()}, args...)...)
	}
	// A new up starts from a clean state: an earlier run's data must not leak into this one.
	for _, stale := range []string{"etcd", "pki", SocketName, etcdSocketName, "kubeconfig"} {
		if err := os.RemoveAll(filepath.Join(l.dir, stale)); err != nil {
			return fmt.Errorf("clean %s: %w", stale, err)
		}
	}
	etcdSocket := ""
	if l.opts.APIServers > 1 {
		network, err := newReplicaNetwork(l.opts.APIServers, l.opts.Endpoint == EndpointBalancer)
		if err != nil {
			return err
		}
		defer func() {
			if err := network.close(); err != nil {
				say("%v", err)
			}
		}()
		l.network = network
		etcdSocket = filepath.Join(l.dir, etcdSocketName)
		say("replica network %s: a namespace each (%s), links %s (%s on this side)", network.subnet,
			strings.Join(network.inodes, ", "), strings.Join(network.links, ", "), network.host)
		if network.balancer != nil {
			say("balanced address %s in a namespace of its own (%s), link %s; the replicas' links live there",
				network.balancerAddress(), network.balancer.inode, network.balancer.link)
		}
	}
	if err := l.generatePKI(); err != nil {
		return err
	}

	etcd, etcdURL, err := startEtcd(l.dir, etcdSocket)
	if err != nil {
		return err
	}
	defer etcd.Close()
	if etcdSocket != "" {
		defer os.Remove(etcdSocket)
	}
	say("etcd ready at %s", etcdURL)

	replicas, err := l.newReplicas(ctx, etcdURL)
	l.replicas = replicas
	defer func() {
		var wg sync.WaitGroup
		for _, r := range replicas {
			if r != nil {
				wg.Go(func() {
					if err := r.close(componentGrace); err != nil {
						say("%v", err)
					}
				})
			}
		}
		wg.Wait()
	}()
	if err != nil {
		return err
	}
	if l.opts.APIServerMemoryLimit > 0 {
		say("kube-apiserver memory limit: %d MiB per replica", l.opts.APIServerMemoryLimit>>20)
	}
	if l.opts.APIServerCPUs > 0 {
		say("kube-apiserver CPU limit: %g cores per replica", l.opts.APIServerCPUs)
	}
	for _, r := range l.replicas {
		if err := r.proc.start(); err != nil {
			return err
		}
	}
	for _, r := range l.replicas {
		if err := r.waitReady(ctx, 3*time.Minute); err != nil {
			return err
		}
	}
	if l.network != nil {
		l.balancer, err = startBalancer(net.JoinHostPort("127.0.0.1", strconv.Itoa(l.port)), l.replicas, l.network.dial)
		if err != nil {
			return fmt.Errorf("load balancer on 127.0.0.1:%d: %w", l.port, err)
		}
		defer func() {
			closeCtx, cancel := context.WithTimeout(context.Background(), componentGrace)
			defer cancel()
			l.balancer.close(closeCtx)
		}()
		if l.network.balancer != nil {
			ln, err := l.network.listenBalanced()
			if err != nil {
				return err
			}
			l.balancer.serve(ln)
		}
		if err := l.publishReplicas(ctx); err != nil {
			return err
		}
		addrs := make([]string, len(l.replicas))
		for i, r := range l.replicas {
			addrs[i] = r.address
		}
		balanced := l.server
		if l.network.balancer != nil {
			balanced += " and " + l.network.balancedAddress()
		}
		say("%d kube-apiservers ready at %s, balanced at %s", len(l.replicas), strings.Join(addrs, ", "), balanced)
	} else {
		say("kube-apiserver ready at %s", l.server)
	}

	if l.opts.Prometheus != "" {
		if l.prometheus, err = l.startPrometheus(ctx); err != nil {
			return err
		}
		defer l.prometheus.proc.close(componentGrace)
		say("prometheus ready at %s, scraping %d kube-apiservers every %s", l.prometheus.url, len(l.replicas), prometheusScrapeInterval)
	}

	if err := grantKubelets(ctx, l.client); err != nil {
		return err
	}
	pkiDir := filepath.Join(l.dir, "pki")
	for _, id := range []string{"kube-controller-manager", "kube-scheduler", "kubelets"} {
		if err := writeKubeconfig(filepath.Join(pkiDir, id+".kubeconfig"), l.server, l.bundle, id); err != nil {
			return err
		}
	}
	schedulerConfig, err := writeSchedulerConfig(pkiDir)
	if err != nil {
		return err
	}
	l.controllerManager = newComponent("kube-controller-manager", filepath.Join(l.dir, "kube-controller-manager.log"), l.controllerManagerArgs())
	defer l.controllerManager.close(componentGrace)
	l.scheduler = newComponent("kube-scheduler", filepath.Join(l.dir, "kube-scheduler.log"), []string{"--config=" + schedulerConfig, "--secure-port=0", "--v=0"})
	defer l.scheduler.close(componentGrace)
	for _, c := range []*component{l.controllerManager, l.scheduler} {
		if err := c.start(); err != nil {
			return err
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := startKubelets(runCtx, filepath.Join(pkiDir, "kubelets.kubeconfig"), filepath.Join(l.dir, "kubelets.log")); err != nil {
		return err
	}
	if err := l.startInformers(runCtx); err != nil {
		return err
	}
	emulator, err := behavior.NewEmulator(l.admin, l.client, l.stats)
	if err != nil {
		return err
	}
	if l.balancer != nil {
		emulator.ConnectionPerPod()
	}
	if err := emulator.Attach(runCtx, l.pods); err != nil {
		return err
	}

	if err := seedNodes(ctx, l.client, l.opts.Nodes); err != nil {
		return err
	}
	say("%d nodes created", l.opts.Nodes)
	if l.opts.Services > 0 {
		if err := seedServices(ctx, l.client, l.opts.Services, l.opts.Nodes*l.opts.PodsPerNode); err != nil {
			return err
		}
		say("%d services and deployments created", l.opts.Services)
	}
	if err := l.waitWorkload(ctx, say); err != nil {
		return err
	}
	l.startup = time.Since(l.start)
	if l.opts.Background == BackgroundBusy {
		if err := l.startBusy(ctx, say); err != nil {
			return err
		}
	}
	if err := l.serveControl(runCtx); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(l.dir, SocketName))

	fmt.Fprintf(out, "%s in %.1fs: %d nodes Ready, %d filler pods Running, %d services; kubeconfig %s\n",
		ReadyPrefix, l.startup.Seconds(), l.opts.Nodes, l.opts.Nodes*l.opts.PodsPerNode, l.opts.Services, l.kubeconfig)
	<-ctx.Done()
	say("stopping")
	cancel()
	return nil
}

func (l *lab) generatePKI() error {
	bundle, err := pki.Generate(filepath.Join(l.dir, "pki"), l.servingIdentities(),
		[]pki.Identity{
			{Name: "admin", User: "kubernetes-admin", Groups: []string{"system:masters"}},
			{Name: "kube-controller-manager", User: "system:kube-controller-manager"},
			{Name: "kube-scheduler", User: "system:kube-scheduler"},
			{Name: "kubelets", User: kubeletsUser, Groups: []string{"system:nodes"}},
			{Name: prometheusIdentity, User: "bulkhead-lab:prometheus", Groups: []string{"system:monitoring"}},
		})
	if err != nil {
		return fmt.Errorf("generate certificates: %w", err)
	}
	l.bundle = bundle
	l.server = "https://127.0.0.1:" + strconv.Itoa(l.port)
	l.kubeconfig = filepath.Join(l.dir, "kubeconfig")
	if err := writeKubeconfig(l.kubeconfig, l.server, bundle, "admin"); err != nil {
		return err
	}
	l.admin = restConfig(l.server, bundle, "admin", 200, 400)
	l.client, err = kubernetes.NewForConfig(l.admin)
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	return nil
}

// apiserverArgs are one replica's flags: it listens on host:port with the serving certificate
// servingName.
func (l *lab) apiserverArgs(etcdURL, host string, port int, servingName string) []string {
	b := l.bundle
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + host,
		"--secure-port=" + strconv.Itoa(port),
		"--advertise-address=" + host,
		// EndpointSlices may not hold loopback addresses; see the package doc.
		"--endpoint-reconciler-type=none",
		"--tls-cert-file=" + b.Serving[servingName].Cert,
		"--tls-private-key-file=" + b.Serving[servingName].Key,
		"--client-ca-file=" + b.CACert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + b.SAPublic,
		"--service-account-signing-key-file=" + b.SAPrivate,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--max-requests-inflight=" + strconv.Itoa(l.opts.MaxRequestsInflight),
		"--max-mutating-requests-inflight=" + strconv.Itoa(l.opts.MaxMutatingRequestsInflight),
		"--enable-priority-and-fairness=true",
		"--allow-privileged=true",
		"--profiling=false",
		"--cert-dir=" + filepath.Join(l.dir, "pki", servingName),
		"--v=0",
	}
	if l.opts.GoAwayChance > 0 {
		args = append(args, "--goaway-chance="+strconv.FormatFloat(l.opts.GoAwayChance, 'g', -1, 64))
	}
	return args
}

func (l *lab) controllerManagerArgs() []string {
	b := l.bundle
	return []string{
		"--kubeconfig=" + filepath.Join(l.dir, "pki", "kube-controller-manager.kubeconfig"),
		"--controllers=daemonset-controller,deployment-controller,replicaset-controller,endpointslice-controller," +
			"serviceaccount-controller,serviceaccount-token-controller,namespace-controller,garbage-collector-controller," +
			"node-lifecycle-controller,taint-eviction-controller,pod-garbage-collector-controller," +
			"root-ca-certificate-publisher-controller,clusterrole-aggregation-controller",
		// Each controller authenticates as its own service account, as in production clusters.
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + b.SAPrivate,
		"--root-ca-file=" + b.CACert,
		"--cluster-signing-cert-file=", // no CSR signing in the lab
		"--leader-elect=false",
		"--secure-port=0",
		// Fast convergence for thousands of filler pods on a small machine.
		"--kube-api-qps=200",
		"--kube-api-burst=400",
		"--concurrent-replicaset-syncs=10",
		"--concurrent-deployment-syncs=10",
		"--v=0",
	}
}

func writeSchedulerConfig(dir string) (string, error) {
	path := filepath.Join(dir, "kube-scheduler.yaml")
	config := fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %s
  qps: 200
  burst: 400
leaderElection:
  leaderElect: false
`, filepath.Join(dir, "kube-scheduler.kubeconfig"))
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		return "", fmt.Errorf("write scheduler config: %w", err)
	}
	return path, nil
}

// startInformers watches nodes and pods: readiness counts and the behaviour emulator use them.
func (l *lab) startInformers(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(l.client, 0)
	l.nodes = factory.Core().V1().Nodes().Informer()
	l.pods = factory.Core().V1().Pods().Informer()
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("informer for %v did not sync", typ)
		}
	}
	return nil
}

// waitWorkload waits until every node is Ready and every filler pod Running.
func (l *lab) waitWorkload(ctx context.Context, say func(string, ...any)) error {
	wantPods := l.opts.Nodes * l.opts.PodsPerNode
	lastReport := time.Now()
	for {
		ready, running := l.counts()
		if ready == l.opts.Nodes && running >= wantPods {
			return nil
		}
		if time.Since(lastReport) > 10*time.Second {
			say("%d/%d nodes Ready, %d/%d filler pods Running", ready, l.opts.Nodes, running, wantPods)
			lastReport = time.Now()
		}
		if time.Since(l.start) > 10*time.Minute {
			return fmt.Errorf("lab not ready after 10 minutes: %d/%d nodes Ready, %d/%d filler pods Running", ready, l.opts.Nodes, running, wantPods)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (l *lab) counts() (readyNodes, runningFiller int) {
	for _, obj := range l.nodes.GetStore().List() {
		for _, c := range obj.(*corev1.Node).Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				readyNodes++
			}
		}
	}
	for _, obj := range l.pods.GetStore().List() {
		pod := obj.(*corev1.Pod)
		if pod.Namespace == FillerNamespace && pod.Status.Phase == corev1.PodRunning && pod.DeletionTimestamp == nil {
			runningFiller++
		}
	}
	return readyNodes, runningFiller
}

// lockDir makes sure only one lab runs in a directory at a time.
func lockDir(dir string) (func(), error) {
	path := filepath.Join(dir, "lab.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("a lab is already running in %s", dir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
