package dns

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// nodeMetrics are the metrics of the wiring: snapshot, API connection, sync and index.
type nodeMetrics struct {
	snapshotLoadErrors   *prometheus.CounterVec
	snapshotWrites       *prometheus.CounterVec
	snapshotWriteFailing prometheus.Gauge
	apiConnected         prometheus.Gauge
	lastSync             prometheus.Gauge
	indexServices        prometheus.Gauge
	indexNames           prometheus.Gauge
	indexBuild           prometheus.Histogram
	ready                prometheus.Gauge
	// snapshotSyncedAt is the SyncedAt (Unix nanoseconds) of the newest snapshot on disk.
	snapshotSyncedAt atomic.Int64
}

func newNodeMetrics(reg prometheus.Registerer) *nodeMetrics {
	m := &nodeMetrics{
		snapshotLoadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_dns_snapshot_load_errors_total",
			Help: "Snapshots found at start-up but ignored, by reason (magic, version, length, checksum, decode, read, index).",
		}, []string{"reason"}),
		snapshotWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_dns_snapshot_writes_total",
			Help: "Snapshot writes, by result (ok, error).",
		}, []string{"result"}),
		snapshotWriteFailing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulkhead_dns_snapshot_write_failing",
			Help: "1 while the last snapshot write failed (the next restart would not find the current view), 0 after a write succeeded.",
		}),
		apiConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulkhead_dns_api_connected",
			Help: "1 while the API server answers the watches' requests, 0 from a refused, failed or timed-out request until one succeeds.",
		}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulkhead_dns_last_sync_timestamp_seconds",
			Help: "When the served view was last read from a synced watch cache (Unix seconds).",
		}),
		indexServices: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulkhead_dns_index_services", Help: "Services in the served index."}),
		indexNames:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulkhead_dns_index_names", Help: "Owner names in the served index."}),
		indexBuild: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bulkhead_dns_index_build_seconds",
			Help:    "Time to build an index from a view.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulkhead_dns_ready", Help: "1 once an index (from the snapshot or the first sync) is served."}),
	}
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bulkhead_dns_snapshot_age_seconds",
		Help: "Age of the data in the newest snapshot on disk (now minus its sync time); NaN when there is none.",
	}, func() float64 {
		at := m.snapshotSyncedAt.Load()
		if at == 0 {
			return math.NaN()
		}
		return time.Since(time.Unix(0, at)).Seconds()
	})
	reg.MustRegister(m.snapshotLoadErrors, m.snapshotWrites, m.snapshotWriteFailing, m.apiConnected, m.lastSync,
		m.indexServices, m.indexNames, m.indexBuild, m.ready, age)
	return m
}
