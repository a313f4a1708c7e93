package controller

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/labels"
	appslisters "k8s.io/client-go/listers/apps/v1"

	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/controller/hold"
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Metrics are the controller's Prometheus metrics, on a registry of their own. Gauges about
// rollouts are computed at scrape time from the DaemonSet informer's cache (no API call);
// counters and histograms are recorded as steps happen. A nil *Metrics records nothing.
type Metrics struct {
	Registry *prometheus.Registry

	decisions      *prometheus.CounterVec
	steps          *prometheus.CounterVec
	stepSeconds    prometheus.Histogram
	timeToDecision prometheus.Histogram
	adoptions      *prometheus.CounterVec
	leader         prometheus.Gauge
	compartments   *prometheus.GaugeVec

	mu sync.Mutex
}

const namespace = "bulkhead_controller"

// NewMetrics registers the controller's metrics; daemonSets feeds the rollout gauges and
// queueLength the queue gauge (either may be nil).
func NewMetrics(daemonSets appslisters.DaemonSetLister, queueLength func() int) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "decisions_total",
		Help: "Soak decisions by verdict (proceed, hold, halt) and the kind of their first reason (analyze.ReasonKind)."}, []string{"verdict", "reason"})
	m.steps = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "steps_total",
		Help: "Rollout steps taken, by result (ok, error)."}, []string{"result"})
	m.stepSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "step_duration_seconds",
		Help: "How long one rollout step took.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 8)})
	m.timeToDecision = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "time_to_decision_seconds",
		Help: "From a wave's agents all Ready to the decision that proceeded or halted it.", Buckets: prometheus.ExponentialBuckets(5, 2, 9)})
	m.adoptions = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "adoptions_total",
		Help: "Rollouts the controller started, by mode."}, []string{"mode"})
	m.leader = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "leader",
		Help: "1 while this replica holds the leader Lease and drives rollouts."})
	m.compartments = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "compartment_seats",
		Help: "Seats per API server of each standing compartment."}, []string{"namespace", "daemonset"})
	m.Registry.MustRegister(m.decisions, m.steps, m.stepSeconds, m.timeToDecision, m.adoptions, m.leader, m.compartments,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	if daemonSets != nil {
		m.Registry.MustRegister(&rolloutCollector{daemonSets: daemonSets})
	}
	if queueLength != nil {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "queue_length",
			Help: "DaemonSets waiting for a step."}, func() float64 { return float64(queueLength()) }))
	}
	return m
}

func (m *Metrics) observeStep(res StepResult, err error, took time.Duration) {
	if m == nil {
		return
	}
	if err != nil {
		m.steps.WithLabelValues("error").Inc()
		return
	}
	m.steps.WithLabelValues("ok").Inc()
	m.stepSeconds.Observe(took.Seconds())
	if d := res.Decision; d != nil {
		m.decisions.WithLabelValues(string(d.Verdict), string(d.Kind)).Inc()
		if d.Verdict != analyze.Hold {
			if rec := lastRecord(res.State); rec != nil && !rec.ReadyAt.IsZero() && rec.At.After(rec.ReadyAt) {
				m.timeToDecision.Observe(rec.At.Sub(rec.ReadyAt).Seconds())
			}
		}
	}
}

func (m *Metrics) adopted(mode v1alpha1.Mode) {
	if m != nil {
		m.adoptions.WithLabelValues(string(mode)).Inc()
	}
}

// SetLeader records whether this replica leads.
func (m *Metrics) SetLeader(leading bool) {
	if m == nil {
		return
	}
	v := 0.0
	if leading {
		v = 1
	}
	m.leader.Set(v)
}

// SetCompartments replaces the compartment gauges: seats per API server by DaemonSet key.
func (m *Metrics) SetCompartments(seats map[[2]string]int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.compartments.Reset()
	for k, s := range seats {
		m.compartments.WithLabelValues(k[0], k[1]).Set(float64(s))
	}
}

// lastRecord is the soak a state decided last: the halting one, else the last that proceeded.
func lastRecord(st state.State) *state.WaveRecord {
	if st.Halted != nil {
		return st.Halted
	}
	if n := len(st.History); n > 0 {
		return &st.History[n-1]
	}
	return nil
}

// rolloutCollector reports, at scrape time, rollouts by phase and each rollout's predicted
// fleet demand against its budget, from the informer's cache.
type rolloutCollector struct{ daemonSets appslisters.DaemonSetLister }

var (
	rolloutsDesc = prometheus.NewDesc(namespace+"_rollouts", "DaemonSets by rollout phase (Held: held by admission, no rollout yet).",
		[]string{"phase"}, nil)
	predictedDesc = prometheus.NewDesc(namespace+"_predicted_fleet_demand", "The last decided soak's prediction of the whole fleet's demand on the API servers, per resource.",
		[]string{"namespace", "daemonset", "resource"}, nil)
	budgetDesc = prometheus.NewDesc(namespace+"_budget", "A rollout's budget on the API servers, per resource.",
		[]string{"namespace", "daemonset", "resource"}, nil)
)

func (c *rolloutCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rolloutsDesc
	ch <- predictedDesc
	ch <- budgetDesc
}

func (c *rolloutCollector) Collect(ch chan<- prometheus.Metric) {
	list, err := c.daemonSets.List(labels.Everything())
	if err != nil {
		return
	}
	phases := map[string]int{}
	for _, ds := range list {
		st, found, err := state.Decode(ds.Annotations)
		switch {
		case err != nil:
			phases["Unreadable"]++
			continue
		case !found && hold.Held(ds) != "":
			phases["Held"]++
			continue
		case !found:
			continue
		}
		phases[string(st.Phase)]++
		c.collectPrediction(ch, ds, st)
	}
	for phase, n := range phases {
		ch <- prometheus.MustNewConstMetric(rolloutsDesc, prometheus.GaugeValue, float64(n), phase)
	}
}

func (c *rolloutCollector) collectPrediction(ch chan<- prometheus.Metric, ds *appsv1.DaemonSet, st state.State) {
	rec := lastRecord(st)
	for _, r := range check.Resources {
		if l, ok := st.Limits[r]; ok && l.Known() {
			ch <- prometheus.MustNewConstMetric(budgetDesc, prometheus.GaugeValue, l.Value, ds.Namespace, ds.Name, string(r))
		}
		if rec == nil {
			continue
		}
		if p := rec.Resources[r].Predicted; p != nil {
			ch <- prometheus.MustNewConstMetric(predictedDesc, prometheus.GaugeValue, p.Mean, ds.Namespace, ds.Name, string(r))
		}
	}
}
