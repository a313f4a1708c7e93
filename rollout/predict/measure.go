package predict

import (
	"math"
	"time"
)

// Estimate is a mean with its standard error.
type Estimate struct {
	Mean    float64 `json:"mean"`
	SE      float64 `json:"se"`
	Samples int     `json:"samples,omitempty"`
}

// Low and High bound the 95% interval (normal approximation), never below zero.
func (e Estimate) Low() float64  { return math.Max(0, e.Mean-z95*e.SE) }
func (e Estimate) High() float64 { return e.Mean + z95*e.SE }

const z95 = 1.96

// minRelativeSE floors every standard error: scrape intervals seen by the client and the server
// differ by tens of milliseconds, so a rate is never known to better than a few percent, however
// flat the series looks. Each resource adds its own absolute floor, its resolution.
const minRelativeSE = 0.02

// Measurement is one wave's lane demand for a resource, split into the start-up burst and the
// steady state.
type Measurement struct {
	// Steady is the lane's mean demand once every agent of the wave is Ready and settled.
	Steady Estimate
	// BurstPeakPerAgent is the worst interval's demand above Steady during start-up, per agent
	// started (averaged over one scrape interval).
	BurstPeakPerAgent float64
	// BurstExtraPerAgent is the extra use (resource-seconds) each started agent cost before
	// settling.
	BurstExtraPerAgent float64
	// Throttled: the lane queued or rejected the agents in some interval (demand counts it).
	Throttled bool
	// LowerBound: in some interval nothing was dispatched, so demand is only known from below.
	LowerBound bool
}

// Measure splits samples at steadyFrom: intervals that begin at or after it are steady state,
// earlier ones are the start-up burst of the started agents. resolution is the smallest
// difference the resource's readings can tell apart (0.005 seats, a millicore): no standard
// error is smaller.
func Measure(samples []Sample, steadyFrom time.Duration, started int, resolution float64) Measurement {
	price := PerRequest(samples)
	var m Measurement
	var steady, burst []weighted
	for _, s := range samples {
		d := DemandOf(s, price)
		m.Throttled = m.Throttled || d.Throttled
		m.LowerBound = m.LowerBound || d.LowerBound
		w := weighted{value: d.Value, weight: s.Span.Seconds()}
		if s.End-s.Span >= steadyFrom {
			steady = append(steady, w)
		} else {
			burst = append(burst, w)
		}
	}
	m.Steady = estimate(steady, resolution)
	if started > 0 && m.Steady.Samples > 0 {
		var peak, extra float64
		for _, b := range burst {
			excess := b.value - m.Steady.Mean
			peak = math.Max(peak, excess)
			extra += math.Max(0, excess) * b.weight
		}
		m.BurstPeakPerAgent = peak / float64(started)
		m.BurstExtraPerAgent = extra / float64(started)
	}
	return m
}

type weighted struct{ value, weight float64 }

// estimate is the time-weighted mean and its standard error. The error comes from batch means:
// consecutive intervals are grouped into about √n batches and the batches' spread gives the
// error. Intervals of a periodic agent are not independent — a 5 s scrape of an agent that lists
// every 10 s alternates between one list and none — and batches long enough to hold whole
// periods average that out where single intervals would exaggerate the noise.
func estimate(xs []weighted, resolution float64) Estimate {
	var sumW, sumWX float64
	for _, x := range xs {
		sumW += x.weight
		sumWX += x.weight * x.value
	}
	if sumW == 0 {
		return Estimate{}
	}
	mean := sumWX / sumW
	n := len(xs)
	batches := batch(xs, max(1, int(math.Sqrt(float64(n)))))
	k := len(batches)
	se := math.Inf(1)
	if k > 1 {
		var ss float64
		for _, b := range batches {
			ss += b.weight * (b.value - mean) * (b.value - mean)
		}
		variance := ss / sumW * float64(k) / float64(k-1)
		// Widen by t/z so the normal 95% interval of Low/High is a Student-t interval: with a
		// handful of batches, the normal one is too narrow.
		se = math.Sqrt(variance/float64(k)) * t975(k-1) / z95
	}
	return Estimate{Mean: mean, SE: math.Max(se, math.Max(resolution, minRelativeSE*math.Abs(mean))), Samples: n}
}

// batch groups consecutive intervals into batches of size (the last batch takes the rest),
// each with its time-weighted mean; size 1 keeps every interval. Fewer than two batches of
// the requested size fall back to single intervals.
func batch(xs []weighted, size int) []weighted {
	if size <= 1 || len(xs)/size < 2 {
		return xs
	}
	var out []weighted
	for i := 0; i < len(xs); i += size {
		end := i + size
		if len(xs)-end < size {
			end = len(xs) // fold a short tail into the last batch
		}
		var w, wx float64
		for _, x := range xs[i:end] {
			w += x.weight
			wx += x.weight * x.value
		}
		out = append(out, weighted{value: wx / w, weight: w})
		if end == len(xs) {
			break
		}
	}
	return out
}

// t975 is the 97.5% quantile of Student's t with df degrees of freedom: exact table values up
// to 10, the Cornish-Fisher expansion beyond (within 0.003 of the true value there).
func t975(df int) float64 {
	table := [...]float64{1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}
	if df < len(table) {
		return table[df]
	}
	z, d := z95, float64(df)
	return z + (z*z*z+z)/(4*d) + (5*z*z*z*z*z+16*z*z*z+3*z)/(96*d*d)
}
