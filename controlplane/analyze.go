package controlplane

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
)

type flowKey struct{ flowSchema, priorityLevel string }

type sliKey struct{ verb, scope string }

// flowSeries is one flow's cumulative counters and current gauges in one scrape, with the label
// dimensions bulkhead does not report (execute, type) summed away.
type flowSeries struct {
	dispatched        float64
	rejected          map[string]float64
	executingSeats    float64
	executingRequests float64
	inQueue           float64
	executionSeconds  float64
	watches           float64
	seatsSum          float64
	seatsCount        float64
	wait              histogram
}

// replicaSeries is what bulkhead reads from one replica's scrape.
type replicaSeries struct {
	processStart float64
	flows        map[flowKey]*flowSeries
	nominalSeats map[string]float64
	currentSeats map[string]float64
	// seatUtilization is APF's own time integral of seats in use ÷ limit per level (a timing
	// ratio histogram: its count grows by elapsed nanoseconds, its sum by ratio × nanoseconds).
	seatUtilization map[string]histogram
	sli             map[sliKey]*histogram
	process         processSeries
}

// processSeries is the process's own resource metrics in one scrape; has records which were there.
type processSeries struct {
	cpuSeconds, gomaxprocs, resident, heapInuse, memoryLimit, transmitBytes, responseBytes float64
	has                                                                                    map[string]bool
}

// unsetMemoryLimit is where Go reports GOMEMLIMIT when none is set (math.MaxInt64).
const unsetMemoryLimit = math.MaxInt64 / 2

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

func extract(families map[string]*dto.MetricFamily) replicaSeries {
	s := replicaSeries{
		flows:           map[flowKey]*flowSeries{},
		nominalSeats:    map[string]float64{},
		currentSeats:    map[string]float64{},
		seatUtilization: map[string]histogram{},
		sli:             map[sliKey]*histogram{},
	}
	flow := func(m *dto.Metric) *flowSeries {
		k := flowKey{label(m, "flow_schema"), label(m, "priority_level")}
		f, ok := s.flows[k]
		if !ok {
			f = &flowSeries{}
			s.flows[k] = f
		}
		return f
	}
	metrics := func(name string) []*dto.Metric { return families[name].GetMetric() }

	if m := metrics(metricProcessStart); len(m) > 0 {
		s.processStart = value(m[0])
	}
	s.process.has = map[string]bool{}
	for name, into := range map[string]*float64{
		metricCPUSeconds: &s.process.cpuSeconds, metricGOMAXPROCS: &s.process.gomaxprocs, metricResident: &s.process.resident,
		metricHeapInuse: &s.process.heapInuse, metricGoMemLimit: &s.process.memoryLimit, metricTransmitBytes: &s.process.transmitBytes,
	} {
		if m := metrics(name); len(m) > 0 {
			*into = value(m[0])
			s.process.has[name] = true
		}
	}
	for _, m := range metrics(metricResponseSizes) {
		s.process.responseBytes += m.GetHistogram().GetSampleSum()
	}
	for _, m := range metrics(metricDispatched) {
		flow(m).dispatched += value(m)
	}
	for _, m := range metrics(metricRejected) {
		f := flow(m)
		if f.rejected == nil {
			f.rejected = map[string]float64{}
		}
		f.rejected[label(m, "reason")] += value(m)
	}
	for _, m := range metrics(metricExecutingSeats) {
		flow(m).executingSeats += value(m)
	}
	for _, m := range metrics(metricExecutingRequests) {
		flow(m).executingRequests += value(m)
	}
	for _, m := range metrics(metricInQueue) {
		flow(m).inQueue += value(m)
	}
	for _, m := range metrics(metricExecution) {
		f := flow(m)
		f.executionSeconds += m.GetHistogram().GetSampleSum()
		if label(m, "type") == "watch" {
			f.watches += histogramOf(m.GetHistogram()).count
		}
	}
	for _, m := range metrics(metricEstimatedSeats) {
		f := flow(m)
		f.seatsSum += m.GetHistogram().GetSampleSum()
		f.seatsCount += histogramOf(m.GetHistogram()).count
	}
	for _, m := range metrics(metricWait) {
		flow(m).wait.add(histogramOf(m.GetHistogram()))
	}
	for _, m := range metrics(metricNominalSeats) {
		s.nominalSeats[label(m, "priority_level")] += value(m)
	}
	for _, m := range metrics(metricCurrentSeats) {
		s.currentSeats[label(m, "priority_level")] += value(m)
	}
	for _, m := range metrics(metricSeatUtilization) {
		s.seatUtilization[label(m, "priority_level")] = histogramOf(m.GetHistogram())
	}
	for _, m := range metrics(metricSLI) {
		k := sliKey{label(m, "verb"), label(m, "scope")}
		h, ok := s.sli[k]
		if !ok {
			h = &histogram{}
			s.sli[k] = h
		}
		h.add(histogramOf(m.GetHistogram()))
	}
	return s
}

// flowDelta is one flow's load in a window, kept with the histogram and seat deltas that let
// replicas be summed before quantiles and averages are taken.
type flowDelta struct {
	load            FlowLoad
	wait            histogram
	seatsSumDelta   float64
	seatsCountDelta float64
}

type loadDelta struct {
	flows        map[flowKey]*flowDelta
	nominalSeats map[string]float64
	currentSeats map[string]float64
	// measuredSeats is the seats each level held on average by APF's own integral.
	measuredSeats map[string]float64
	sli           map[sliKey]*histogram
	resources     Resources
}

func newLoadDelta() loadDelta {
	return loadDelta{flows: map[flowKey]*flowDelta{}, nominalSeats: map[string]float64{}, currentSeats: map[string]float64{},
		measuredSeats: map[string]float64{}, sli: map[sliKey]*histogram{}}
}

// replicaDelta computes one replica's load from its previous series (nil when there is none:
// only gauges are then known) and its current series over seconds.
func replicaDelta(prev *replicaSeries, cur replicaSeries, seconds float64) loadDelta {
	d := newLoadDelta()
	maps.Copy(d.nominalSeats, cur.nominalSeats)
	maps.Copy(d.currentSeats, cur.currentSeats)
	for k, c := range cur.flows {
		fd := &flowDelta{load: FlowLoad{
			FlowSchema:        k.flowSchema,
			PriorityLevel:     k.priorityLevel,
			ExecutingSeats:    c.executingSeats,
			ExecutingRequests: c.executingRequests,
			InQueue:           c.inQueue,
		}}
		d.flows[k] = fd
		if prev == nil || seconds <= 0 {
			continue
		}
		p, ok := prev.flows[k]
		if !ok {
			p = &flowSeries{}
		}
		fd.load.DispatchedPerSecond = counterSince(p.dispatched, c.dispatched) / seconds
		fd.load.WatchesPerSecond = counterSince(p.watches, c.watches) / seconds
		for reason, n := range c.rejected {
			if rate := counterSince(p.rejected[reason], n) / seconds; rate > 0 {
				if fd.load.RejectedByReason == nil {
					fd.load.RejectedByReason = map[string]float64{}
				}
				fd.load.RejectedByReason[reason] = rate
				fd.load.RejectedPerSecond += rate
			}
		}
		execution := counterSince(p.executionSeconds, c.executionSeconds)
		fd.seatsSumDelta = counterSince(p.seatsSum, c.seatsSum)
		fd.seatsCountDelta = counterSince(p.seatsCount, c.seatsCount)
		if c.seatsCount < p.seatsCount {
			fd.seatsSumDelta = c.seatsSum
		}
		fd.load.ExecutionSecondsPerSecond = execution / seconds
		fd.load.SeatSecondsPerSecond = execution * averageSeats(fd.seatsSumDelta, fd.seatsCountDelta, c) / seconds
		fd.wait = c.wait.since(p.wait)
	}
	d.resources = resourcesOf(prev, cur, seconds)
	if prev != nil && seconds > 0 {
		for level, c := range cur.seatUtilization {
			// The ratio's denominator is the level's current limit, which moves only every few
			// seconds; the limit at the end of the window turns the mean ratio back into seats.
			if delta := c.since(prev.seatUtilization[level]); delta.count > 0 {
				d.measuredSeats[level] = delta.sum / delta.count * cur.currentSeats[level]
			}
		}
		for k, c := range cur.sli {
			p, ok := prev.sli[k]
			if !ok {
				p = &histogram{}
			}
			delta := c.since(*p)
			d.sli[k] = &delta
		}
	}
	return d
}

// resourcesOf reads one replica's resources: gauges from cur, rates over seconds when prev is
// known. A counter that went down (a restart) counts from zero, as the APF counters do.
func resourcesOf(prev *replicaSeries, cur replicaSeries, seconds float64) Resources {
	c := cur.process
	r := Resources{CPUCapacityCores: c.gomaxprocs, ResidentBytes: c.resident, HeapInuseBytes: c.heapInuse}
	if c.memoryLimit > 0 && c.memoryLimit < unsetMemoryLimit {
		r.MemoryLimitBytes = c.memoryLimit
	}
	if prev != nil && seconds > 0 {
		p := prev.process
		r.CPUCores = counterSince(p.cpuSeconds, c.cpuSeconds) / seconds
		r.TransmitBytesPerSecond = counterSince(p.transmitBytes, c.transmitBytes) / seconds
		r.ResponseBytesPerSecond = counterSince(p.responseBytes, c.responseBytes) / seconds
	}
	for _, m := range []struct{ metric, resource string }{
		{metricCPUSeconds, "cpu"}, {metricGOMAXPROCS, "cpu capacity"}, {metricResident, "memory"}, {metricTransmitBytes, "network"},
	} {
		if !c.has[m.metric] {
			r.Missing = append(r.Missing, m.resource)
		}
	}
	if r.MemoryLimitBytes == 0 {
		r.Missing = append(r.Missing, "memory limit")
	}
	return r
}

// add sums another replica's resources into r.
func (r *Resources) add(o Resources) {
	r.CPUCores += o.CPUCores
	r.CPUCapacityCores += o.CPUCapacityCores
	r.ResidentBytes += o.ResidentBytes
	r.HeapInuseBytes += o.HeapInuseBytes
	r.MemoryLimitBytes += o.MemoryLimitBytes
	r.TransmitBytesPerSecond += o.TransmitBytesPerSecond
	r.ResponseBytesPerSecond += o.ResponseBytesPerSecond
	for _, m := range o.Missing {
		if !slices.Contains(r.Missing, m) {
			r.Missing = append(r.Missing, m)
		}
	}
	slices.Sort(r.Missing)
}

// averageSeats is the mean seat estimate of the requests estimated in the window; when none were
// (a long request finishing in a quiet window) it falls back to the flow's lifetime mean.
func averageSeats(sumDelta, countDelta float64, c *flowSeries) float64 {
	if countDelta > 0 {
		return sumDelta / countDelta
	}
	if c.seatsCount > 0 {
		return c.seatsSum / c.seatsCount
	}
	return 0
}

// add sums another replica's load into d.
func (d *loadDelta) add(o loadDelta) {
	for k, v := range o.nominalSeats {
		d.nominalSeats[k] += v
	}
	for k, v := range o.currentSeats {
		d.currentSeats[k] += v
	}
	for k, v := range o.measuredSeats {
		d.measuredSeats[k] += v
	}
	d.resources.add(o.resources)
	for k, of := range o.flows {
		f, ok := d.flows[k]
		if !ok {
			f = &flowDelta{load: FlowLoad{FlowSchema: k.flowSchema, PriorityLevel: k.priorityLevel}}
			d.flows[k] = f
		}
		f.load.DispatchedPerSecond += of.load.DispatchedPerSecond
		f.load.WatchesPerSecond += of.load.WatchesPerSecond
		f.load.RejectedPerSecond += of.load.RejectedPerSecond
		for reason, rate := range of.load.RejectedByReason {
			if f.load.RejectedByReason == nil {
				f.load.RejectedByReason = map[string]float64{}
			}
			f.load.RejectedByReason[reason] += rate
		}
		f.load.SeatSecondsPerSecond += of.load.SeatSecondsPerSecond
		f.load.ExecutionSecondsPerSecond += of.load.ExecutionSecondsPerSecond
		f.load.ExecutingSeats += of.load.ExecutingSeats
		f.load.ExecutingRequests += of.load.ExecutingRequests
		f.load.InQueue += of.load.InQueue
		f.wait.add(of.wait)
		f.seatsSumDelta += of.seatsSumDelta
		f.seatsCountDelta += of.seatsCountDelta
	}
	for k, h := range o.sli {
		m, ok := d.sli[k]
		if !ok {
			m = &histogram{}
			d.sli[k] = m
		}
		m.add(*h)
	}
}

// load turns summed deltas into the reported figures: quantiles, averages, per-level totals.
func (d loadDelta) load() Load {
	out := Load{Flows: []FlowLoad{}, PriorityLevels: []LevelLoad{}, SLIs: []SLI{}, Resources: d.resources}
	levels := map[string]*LevelLoad{}
	levelWaits := map[string]*histogram{}
	level := func(name string) *LevelLoad {
		l, ok := levels[name]
		if !ok {
			l = &LevelLoad{PriorityLevel: name}
			levels[name] = l
			levelWaits[name] = &histogram{}
		}
		return l
	}
	for _, f := range d.flows {
		fl := f.load
		fl.Wait = f.wait.p99()
		if f.seatsCountDelta > 0 {
			fl.AverageSeats = f.seatsSumDelta / f.seatsCountDelta
		}
		out.Flows = append(out.Flows, fl)

		l := level(fl.PriorityLevel)
		l.DispatchedPerSecond += fl.DispatchedPerSecond
		l.RejectedPerSecond += fl.RejectedPerSecond
		for reason, rate := range fl.RejectedByReason {
			if l.RejectedByReason == nil {
				l.RejectedByReason = map[string]float64{}
			}
			l.RejectedByReason[reason] += rate
		}
		l.SeatSecondsPerSecond += fl.SeatSecondsPerSecond
		l.ExecutionSecondsPerSecond += fl.ExecutionSecondsPerSecond
		l.ExecutingSeats += fl.ExecutingSeats
		l.InQueue += fl.InQueue
		levelWaits[fl.PriorityLevel].add(f.wait)
	}
	for name, seats := range d.nominalSeats {
		level(name).NominalLimitSeats = seats
	}
	for name, seats := range d.currentSeats {
		level(name).CurrentLimitSeats = seats
	}
	for name, seats := range d.measuredSeats {
		level(name).MeasuredSeatSecondsPerSecond = seats
	}
	for name, l := range levels {
		l.Wait = levelWaits[name].p99()
		if l.CurrentLimitSeats > 0 {
			l.Utilization = l.SeatSecondsPerSecond / l.CurrentLimitSeats
		}
		out.Seats.Executing += l.ExecutingSeats
		out.Seats.SeatSecondsPerSecond += l.SeatSecondsPerSecond
		out.Seats.Nominal += l.NominalLimitSeats
		out.Seats.Current += l.CurrentLimitSeats
		out.PriorityLevels = append(out.PriorityLevels, *l)
	}
	for k, h := range d.sli {
		if h.count <= 0 {
			continue
		}
		sli := SLI{Verb: k.verb, Scope: k.scope, Latency: h.p99(), SLOSeconds: SLOSeconds(k.verb, k.scope)}
		sli.Breached = sli.SLOSeconds > 0 && sli.Latency.P99Seconds > sli.SLOSeconds
		out.SLIs = append(out.SLIs, sli)
	}
	slices.SortFunc(out.Flows, func(a, b FlowLoad) int {
		return cmp.Or(
			cmp.Compare(b.SeatSecondsPerSecond, a.SeatSecondsPerSecond),
			cmp.Compare(b.DispatchedPerSecond, a.DispatchedPerSecond),
			cmp.Compare(a.FlowSchema, b.FlowSchema),
			cmp.Compare(a.PriorityLevel, b.PriorityLevel))
	})
	slices.SortFunc(out.PriorityLevels, func(a, b LevelLoad) int {
		return cmp.Or(cmp.Compare(b.SeatSecondsPerSecond, a.SeatSecondsPerSecond), cmp.Compare(a.PriorityLevel, b.PriorityLevel))
	})
	slices.SortFunc(out.SLIs, func(a, b SLI) int {
		return cmp.Or(cmp.Compare(a.Verb, b.Verb), cmp.Compare(a.Scope, b.Scope))
	})
	return out
}

// SLOSeconds is the upstream p99 latency objective for a verb and scope
// (kubernetes/community sig-scalability/slos/api_call_latency.md): 1 s for mutating calls on
// single objects; for reads 1 s at resource scope, 5 s at namespace scope, 30 s at cluster scope.
// Other calls (WATCH, CONNECT, collection deletes) have none: 0.
func SLOSeconds(verb, scope string) float64 {
	switch verb {
	case "POST", "PUT", "PATCH", "APPLY", "DELETE":
		if scope == "resource" {
			return 1
		}
	case "GET", "LIST":
		switch scope {
		case "resource":
			return 1
		case "namespace":
			return 5
		case "cluster":
			return 30
		}
	}
	return 0
}

// Analyze computes the Reading between two snapshots of the same cluster. It is a pure function:
// replicas are matched by name; a replica only in cur is ReplicaNew (gauges, no rates), one only
// in prev is ReplicaGone, one whose process start time changed is ReplicaRestarted (its counters
// count from the restart), one whose cur scrape failed is ReplicaUnreachable, and one whose cur
// scrape is no later than its prev one is ReplicaStale (left out: nothing new to rate). Coverage
// counts the replicas the sums include.
func Analyze(prev, cur Snapshot) Reading {
	before := map[string]ReplicaScrape{}
	for _, r := range prev.Replicas {
		before[r.Replica] = r
	}
	reading := Reading{Coverage: Coverage{Source: cur.Source, Believed: cur.Believed, BelievedFrom: cur.BelievedFrom}}
	total := newLoadDelta()
	seen := map[string]bool{}
	widen := func(from, to time.Time) {
		if !from.IsZero() && (reading.Window.From.IsZero() || from.Before(reading.Window.From)) {
			reading.Window.From = from
		}
		if to.After(reading.Window.To) {
			reading.Window.To = to
		}
	}
	for _, c := range cur.Replicas {
		seen[c.Replica] = true
		reading.Coverage.Replicas++
		status := ReplicaStatus{Replica: c.Replica, ScrapedBytes: c.Bytes, ScrapeSeconds: c.Duration.Seconds()}
		if c.Err != nil {
			status.State, status.Error = ReplicaUnreachable, c.Err.Error()
			reading.Replicas = append(reading.Replicas, status)
			continue
		}
		p, inPrev := before[c.Replica]
		if inPrev && sameScrape(p, c) {
			// The same scrape again (a process behind a balanced address not reached this
			// time, a Prometheus that has not scraped since): nothing new to rate.
			status.State = ReplicaStale
			reading.Replicas = append(reading.Replicas, status)
			continue
		}
		curSeries := extract(c.Families)
		var prevSeries *replicaSeries
		var seconds float64
		status.State = ReplicaNew
		if inPrev && p.Err == nil {
			ps := extract(p.Families)
			from := p.Taken
			status.State = ReplicaOK
			if ps.processStart != curSeries.processStart {
				// Counters restarted with the process: they hold what happened since it started.
				status.State = ReplicaRestarted
				ps = replicaSeries{}
				if started := time.Unix(0, int64(curSeries.processStart*1e9)); started.After(from) && started.Before(c.Taken) {
					from = started
				}
			}
			prevSeries, seconds = &ps, c.Taken.Sub(from).Seconds()
			widen(from, c.Taken)
		} else {
			widen(time.Time{}, c.Taken)
		}
		reading.Coverage.Read++
		if prevSeries != nil {
			reading.Coverage.Rated++
		}
		delta := replicaDelta(prevSeries, curSeries, seconds)
		total.add(delta)
		load := delta.load()
		status.Load = &load
		reading.Replicas = append(reading.Replicas, status)
	}
	for _, p := range prev.Replicas {
		if !seen[p.Replica] {
			reading.Replicas = append(reading.Replicas, ReplicaStatus{Replica: p.Replica, State: ReplicaGone})
		}
	}
	slices.SortFunc(reading.Replicas, func(a, b ReplicaStatus) int { return cmp.Compare(a.Replica, b.Replica) })
	if !reading.Window.From.IsZero() {
		reading.Window.Seconds = reading.Window.To.Sub(reading.Window.From).Seconds()
	}
	reading.Load = total.load()
	return reading
}
