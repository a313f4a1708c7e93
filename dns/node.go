package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/bulkhead-dev/bulkhead/dns/index"
	"github.com/bulkhead-dev/bulkhead/dns/server"
	"github.com/bulkhead-dev/bulkhead/dns/snapshot"
	"github.com/bulkhead-dev/bulkhead/dns/upstream"
	"github.com/bulkhead-dev/bulkhead/dns/watch"
)

// Node is a running bulkhead dns.
type Node struct {
	cfg     Config
	log     *slog.Logger
	server  *server.Server
	metrics *nodeMetrics
	writer  *snapshot.Writer
	ready   atomic.Bool
	udp     *net.UDPConn
	tcp     net.Listener
	http    net.Listener
	cancel  context.CancelFunc
	// conn follows the connection to the API server; its changes are logged once each.
	conn *watch.Connection
	// snapshotFailure is the last snapshot write's error ("" after a success), for /readyz.
	snapshotFailure atomic.Pointer[string]
	// serving holds the DNS and HTTP servers, syncing the watch and the snapshot writer: on
	// shutdown the servers keep answering until syncing has finished or shutdownGrace passed.
	serving, syncing sync.WaitGroup
	served           chan struct{} // closed once the servers stopped
	errOnce          sync.Once
	firstErr         error
}

// Start validates cfg, binds the listeners, loads the snapshot and starts serving and
// watching. It returns once queries are being answered.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Kube == nil {
		return nil, errors.New("no Kubernetes client configuration")
	}
	if cfg.SnapshotDelay == 0 {
		cfg.SnapshotDelay = DefaultSnapshotDelay
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n := &Node{cfg: cfg, log: cfg.Log, metrics: newNodeMetrics(reg)}

	var resolver server.Resolver
	if cfg.Upstream != "" {
		servers, err := upstream.ParseServers(cfg.Upstream)
		if err != nil {
			return nil, fmt.Errorf("--upstream: %w", err)
		}
		fwd, err := upstream.New(upstream.Config{Servers: servers, MaxStale: cfg.MaxStale, Metrics: upstream.NewMetrics(reg)})
		if err != nil {
			return nil, err
		}
		resolver = fwd
	}
	srv, err := server.New(server.Config{Zone: cfg.ClusterDomain, Upstream: resolver, Metrics: server.NewMetrics(reg), Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	n.server = srv
	n.writer = &snapshot.Writer{Path: cfg.Snapshot, Delay: cfg.SnapshotDelay, Log: cfg.Log, Written: n.snapshotWritten}

	if err := n.listen(); err != nil {
		return nil, err
	}
	n.loadSnapshot()

	n.conn = watch.NewConnection(n.connectionChanged)
	kube := rest.CopyConfig(cfg.Kube)
	kube.Wrap(n.conn.Wrap)
	client, err := kubernetes.NewForConfig(kube)
	if err != nil {
		n.closeListeners()
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	ctx, n.cancel = context.WithCancel(ctx)
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	n.run(&n.serving, func() error { return srv.ServeUDP(serveCtx, n.udp) })
	n.run(&n.serving, func() error { return srv.ServeTCP(serveCtx, n.tcp) })
	if n.http != nil {
		n.run(&n.serving, func() error { return n.serveHTTP(serveCtx, reg) })
	}
	n.run(&n.syncing, func() error { n.writer.Run(ctx); return nil })
	n.run(&n.syncing, func() error {
		return watch.Run(ctx, watch.Config{
			Client: client,
			OnView: n.view,
			OnConnection: func(connected bool, err error) {
				if connected {
					err = nil
				}
				n.conn.ObserveError(err)
			},
		})
	})
	n.served = make(chan struct{})
	go func() {
		defer close(n.served)
		<-ctx.Done()
		// Stopping the watch waits out client-go's retry back-off when the API server is down
		// (1.7 s measured), and a restarted node-local DNS must not go quiet for that long:
		// answer until the watch and the last snapshot write are done, within a grace.
		waitAtMost(&n.syncing, shutdownGrace)
		stopServing()
		n.serving.Wait()
	}()
	cfg.Log.Info("serving", "listen", n.udp.LocalAddr().String(), "zone", cfg.ClusterDomain, "ready", n.ready.Load())
	return n, nil
}

func (n *Node) listen() error {
	udpAddr, err := net.ResolveUDPAddr("udp", n.cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", n.cfg.Listen, err)
	}
	// The TCP listener takes the UDP port. With port 0 the kernel's pick may be taken for TCP:
	// pick again a few times.
	for attempt := 0; ; attempt++ {
		if n.udp, err = net.ListenUDP("udp", udpAddr); err != nil {
			return fmt.Errorf("--listen %s (udp): %w", n.cfg.Listen, err)
		}
		if n.tcp, err = net.Listen("tcp", n.udp.LocalAddr().String()); err == nil {
			break
		}
		n.udp.Close()
		n.udp = nil
		if udpAddr.Port != 0 || attempt == 10 {
			return fmt.Errorf("--listen %s (tcp): %w", n.cfg.Listen, err)
		}
	}
	if n.cfg.Metrics != "" {
		if n.http, err = net.Listen("tcp", n.cfg.Metrics); err != nil {
			n.closeListeners()
			return fmt.Errorf("--metrics %s: %w", n.cfg.Metrics, err)
		}
	}
	return nil
}

func (n *Node) closeListeners() {
	if n.udp != nil {
		n.udp.Close()
	}
	if n.tcp != nil {
		n.tcp.Close()
	}
	if n.http != nil {
		n.http.Close()
	}
}

// loadSnapshot serves the snapshot's view, if there is a valid one. Problems are reported and
// otherwise ignored: a snapshot is an optimisation of start-up, never a reason not to start.
func (n *Node) loadSnapshot() {
	if err := snapshot.RemoveStaleTemps(n.cfg.Snapshot); err != nil {
		n.log.Warn("could not remove stale snapshot temp files", "err", err)
	}
	start := time.Now()
	st, err := snapshot.Read(n.cfg.Snapshot)
	var corrupt *snapshot.CorruptError
	switch {
	case errors.Is(err, os.ErrNotExist):
		n.log.Info("no snapshot yet; cluster names wait for the first sync", "path", n.cfg.Snapshot)
		return
	case errors.As(err, &corrupt):
		n.metrics.snapshotLoadErrors.WithLabelValues(corrupt.Reason).Inc()
		n.log.Error("ignoring snapshot", "err", err)
		return
	case err != nil:
		n.metrics.snapshotLoadErrors.WithLabelValues("read").Inc()
		n.log.Error("ignoring snapshot", "err", err)
		return
	}
	if err := n.serve(st); err != nil {
		n.metrics.snapshotLoadErrors.WithLabelValues("index").Inc()
		n.log.Error("ignoring snapshot", "path", n.cfg.Snapshot, "err", err)
		return
	}
	n.metrics.snapshotSyncedAt.Store(st.SyncedAt.UnixNano())
	n.log.Info("serving snapshot", "path", n.cfg.Snapshot, "services", len(st.Services),
		"synced_at", st.SyncedAt, "load", time.Since(start))
}

// serve builds and swaps in the index of st.
func (n *Node) serve(st *snapshot.State) error {
	start := time.Now()
	ix, err := index.Build(index.Options{Zone: n.cfg.ClusterDomain, TTL: uint32(n.cfg.TTL / time.Second)}, st.Services, st.EndpointSlices)
	if err != nil {
		return fmt.Errorf("build index: %w", err)
	}
	if err := n.server.SetIndex(ix); err != nil {
		return err
	}
	n.metrics.indexBuild.Observe(time.Since(start).Seconds())
	n.metrics.indexServices.Set(float64(ix.Services()))
	n.metrics.indexNames.Set(float64(ix.Names()))
	n.ready.Store(true)
	n.metrics.ready.Set(1)
	return nil
}

// view takes a synced view from the watch: serve it, then persist it.
func (n *Node) view(st *snapshot.State) {
	if err := n.serve(st); err != nil {
		n.log.Error("keeping the previous index", "err", err)
		return
	}
	n.metrics.lastSync.Set(float64(st.SyncedAt.UnixNano()) / 1e9)
	n.writer.Submit(st)
}

// connectionChanged logs a change of the connection to the API server, once per change: an
// outage is one line with its cause, its end another with its length.
func (n *Node) connectionChanged(c watch.ConnectionChange) {
	if c.State == watch.Connected {
		n.metrics.apiConnected.Set(1)
		if c.Previous == watch.Unknown {
			n.log.Info("connected to the API server")
			return
		}
		n.log.Info("API server reachable again; answering from its watch", "was", string(c.Previous), "for", c.Lasted.Round(time.Second))
		return
	}
	n.metrics.apiConnected.Set(0)
	view := "no view yet: cluster names are SERVFAIL"
	if n.ready.Load() {
		view = "answering from the last view"
	}
	n.log.Warn("API server "+string(c.State)+"; "+view, "cause", c.Cause)
}

func (n *Node) snapshotWritten(st *snapshot.State, err error) {
	if err != nil {
		n.metrics.snapshotWrites.WithLabelValues("error").Inc()
		n.metrics.snapshotWriteFailing.Set(1)
		failure := fmt.Sprintf("snapshot %s: last write failed at %s: %v", n.cfg.Snapshot, time.Now().UTC().Format(time.RFC3339), err)
		n.snapshotFailure.Store(&failure)
		return
	}
	n.metrics.snapshotWrites.WithLabelValues("ok").Inc()
	n.metrics.snapshotWriteFailing.Set(0)
	n.snapshotFailure.Store(nil)
	n.metrics.snapshotSyncedAt.Store(st.SyncedAt.UnixNano())
}

func (n *Node) serveHTTP(ctx context.Context, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !n.ready.Load() {
			http.Error(w, "not ready: no snapshot loaded and no sync with the API server yet", http.StatusServiceUnavailable)
			return
		}
		// Serving is what readiness means; a failing snapshot write does not stop it, but the
		// next restart during an outage would find no data: say so here.
		fmt.Fprintln(w, "ok")
		if failure := n.snapshotFailure.Load(); failure != nil {
			fmt.Fprintln(w, "warning: "+*failure)
		}
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stop := context.AfterFunc(ctx, func() { hs.Close() })
	defer stop()
	if err := hs.Serve(n.http); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}

// shutdownGrace bounds how long the servers keep answering after Stop while the watch and the
// snapshot writer finish.
const shutdownGrace = 3 * time.Second

func waitAtMost(wg *sync.WaitGroup, limit time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
	}
}

func (n *Node) run(wg *sync.WaitGroup, f func() error) {
	wg.Go(func() {
		if err := f(); err != nil {
			n.errOnce.Do(func() { n.firstErr = err })
			n.log.Error("stopping", "err", err)
			n.cancel()
		}
	})
}

// DNSAddr is the address queries are answered on (UDP and TCP).
func (n *Node) DNSAddr() string { return n.udp.LocalAddr().String() }

// MetricsAddr is the address of /metrics, /healthz and /readyz, or "" when disabled.
func (n *Node) MetricsAddr() string {
	if n.http == nil {
		return ""
	}
	return n.http.Addr().String()
}

// Ready reports whether an index is served.
func (n *Node) Ready() bool { return n.ready.Load() }

// Stop ends serving and watching, writes any pending snapshot and returns the first error
// that stopped the node early, if any.
func (n *Node) Stop() error {
	n.cancel()
	return n.Wait()
}

// Wait blocks until the node stopped, by Stop, its context, or an error. A watch that does not
// return within the shutdown grace is left behind.
func (n *Node) Wait() error {
	<-n.served
	n.errOnce.Do(func() {}) // a watch left behind can no longer record an error while we read it
	return n.firstErr
}
