package soak

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/bulkhead-dev/bulkhead/controlplane"
	"github.com/bulkhead-dev/bulkhead/rollout/analyze"
	"github.com/bulkhead-dev/bulkhead/rollout/execute"
	"github.com/bulkhead-dev/bulkhead/rollout/predict"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// Scraper is the part of controlplane.Scraper a soak uses.
type Scraper interface {
	Scrape(ctx context.Context) controlplane.Snapshot
}

// Soaker watches waves. Before is a Reading of the cluster from before the rollout began: the
// other flows' rejections and waits are judged against it.
type Soaker struct {
	Scraper Scraper
	Client  kubernetes.Interface
	Before  controlplane.Reading
	// Interval is the scrape interval; default 5 s.
	Interval time.Duration
	Limits   analyze.Limits
	// Progress, when set, sees every decision, holds included.
	Progress func(analyze.Decision)
}

// Watch soaks the current wave (or the baseline) of st until analyze decides to proceed or to
// halt, and returns that decision with the wave's record for the state's history.
func (s *Soaker) Watch(ctx context.Context, ds *appsv1.DaemonSet, st state.State) (analyze.Decision, state.WaveRecord, error) {
	interval := s.Interval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	ds, current, err := execute.CurrentRevision(ctx, s.Client, ds.Namespace, ds.Name)
	if err != nil {
		return analyze.Decision{}, state.WaveRecord{}, err
	}
	pods, stop, err := watchPods(ctx, s.Client, ds)
	if err != nil {
		return analyze.Decision{}, state.WaveRecord{}, err
	}
	defer stop()

	start := st.SoakStarted
	first := s.Scraper.Scrape(ctx)
	prevSnap := first
	var prevReading *controlplane.Reading
	var samples []predict.Sample
	readyAt := time.Duration(-1)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return analyze.Decision{}, state.WaveRecord{}, fmt.Errorf("soak of wave %d: %w", st.Wave, ctx.Err())
		case <-ticker.C:
		}
		snap := s.Scraper.Scrape(ctx)
		reading := controlplane.Analyze(prevSnap, snap)
		if reading.Window.Seconds > 0 && reading.Reachable() {
			samples = append(samples, LaneSample(prevReading, reading, st.Lane, start))
			prevReading = &reading
		}
		prevSnap = snap
		window := controlplane.Analyze(first, snap)

		agents, err := countAgents(pods, current, st)
		if err != nil {
			return analyze.Decision{}, state.WaveRecord{}, err
		}
		elapsed := time.Since(start)
		if agents.Ready == agents.Desired && readyAt < 0 {
			readyAt = elapsed
		}
		agents.ReadyAt = max(readyAt, 0)
		obs := analyze.Observations{
			Wave: st.Wave, FleetSize: st.Eligible, BudgetSeats: st.BudgetSeats, Soak: st.Soak.Duration,
			Elapsed: elapsed, Agents: agents, Lane: samples,
			History: st.Points(), PriorBurstPerAgent: st.PriorBurstPerAgent(),
			SLIs: SLIs(window), Others: OtherFlows(window, s.Before, st.Lane), Limits: s.Limits,
		}
		d := analyze.Analyze(obs)
		if s.Progress != nil {
			s.Progress(d)
		}
		if d.Verdict != analyze.Hold {
			rec := Record(d, agents, time.Now())
			if readyAt >= 0 {
				rec.ReadyAt = start.Add(readyAt)
			}
			return d, rec, nil
		}
	}
}

// Record is what the state keeps of a wave's final decision: the steady measurement for the
// regression, and the prediction and headline for the report.
func Record(d analyze.Decision, agents analyze.Agents, at time.Time) state.WaveRecord {
	m := d.Measurement
	rec := state.WaveRecord{Old: agents.Old, New: agents.Desired, Seats: m.Steady.Mean, SE: m.Steady.SE,
		Samples: m.Steady.Samples, BurstPeakPerAgent: m.BurstPeakPerAgent, MaxNextWave: max(d.MaxNextWave, 0),
		Headline: d.Headline, At: at}
	if p := d.Prediction; p != nil {
		rec.Predicted, rec.PredictedLow, rec.PredictedHigh = p.Seats.Mean, p.Seats.Low(), p.Seats.High()
	}
	return rec
}

// countAgents counts the wave's agents from the pod cache: new-revision pods (Ready, and
// started in this wave when the soak is fresh) and the old ones.
func countAgents(pods cache.GenericLister, current string, st state.State) (analyze.Agents, error) {
	objs, err := pods.List(labels.Everything())
	if err != nil {
		return analyze.Agents{}, fmt.Errorf("pods from cache: %w", err)
	}
	a := analyze.Agents{Desired: st.Done}
	if st.Phase == state.Baseline {
		a.Desired = 0
	}
	waveStart := st.WaveStarted.Truncate(time.Second) // creation timestamps have 1 s resolution
	for _, o := range objs {
		p := o.(*corev1.Pod)
		if p.DeletionTimestamp != nil {
			continue
		}
		if p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] != current || st.Phase == state.Baseline {
			a.Old++
			continue
		}
		if ready(p) {
			a.Ready++
		}
		if st.FreshSoak() && !p.CreationTimestamp.Time.Before(waveStart) {
			a.Started++
		}
	}
	a.Ready = min(a.Ready, a.Desired)
	a.Started = min(a.Started, a.Desired)
	return a, nil
}

// watchPods keeps a cache of the DaemonSet's pods: one LIST and a watch, scoped to its
// namespace and selector.
func watchPods(ctx context.Context, client kubernetes.Interface, ds *appsv1.DaemonSet) (cache.GenericLister, func(), error) {
	selector, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return nil, nil, fmt.Errorf("DaemonSet %s/%s selector: %w", ds.Namespace, ds.Name, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ds.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector.String() }))
	informer, err := factory.ForResource(corev1.SchemeGroupVersion.WithResource("pods"))
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("pod informer: %w", err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.Informer().HasSynced) {
		cancel()
		return nil, nil, fmt.Errorf("pods of %s/%s: cache did not sync", ds.Namespace, ds.Name)
	}
	return informer.Lister(), func() { cancel(); factory.Shutdown() }, nil
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
