package controlplane

import (
	"math"
	"slices"

	dto "github.com/prometheus/client_model/go"
)

// histogram is a cumulative Prometheus histogram: count and sum, and cumulative counts at each
// finite upper bound (the +Inf bucket is the count).
type histogram struct {
	count      float64
	sum        float64
	uppers     []float64
	cumulative []float64
}

func histogramOf(h *dto.Histogram) histogram {
	out := histogram{count: float64(h.GetSampleCount()), sum: h.GetSampleSum()}
	if h.SampleCountFloat != nil {
		out.count = h.GetSampleCountFloat()
	}
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), +1) {
			continue
		}
		c := float64(b.GetCumulativeCount())
		if b.CumulativeCountFloat != nil {
			c = b.GetCumulativeCountFloat()
		}
		out.uppers = append(out.uppers, b.GetUpperBound())
		out.cumulative = append(out.cumulative, c)
	}
	return out
}

// add merges o into h. Series of one metric share bucket bounds; when they do not, bounds are
// united and each side's cumulative count is carried to bounds it lacks.
func (h *histogram) add(o histogram) {
	h.count += o.count
	h.sum += o.sum
	if h.uppers == nil {
		h.uppers = slices.Clone(o.uppers)
		h.cumulative = slices.Clone(o.cumulative)
		return
	}
	if slices.Equal(h.uppers, o.uppers) {
		for i := range h.cumulative {
			h.cumulative[i] += o.cumulative[i]
		}
		return
	}
	uppers := slices.Sorted(slices.Values(append(slices.Clone(h.uppers), o.uppers...)))
	uppers = slices.Compact(uppers)
	cumulative := make([]float64, len(uppers))
	for i, u := range uppers {
		cumulative[i] = h.cumulativeAt(u) + o.cumulativeAt(u)
	}
	h.uppers, h.cumulative = uppers, cumulative
}

// cumulativeAt is the count of observations known to be <= upper.
func (h histogram) cumulativeAt(upper float64) float64 {
	at := 0.0
	for i, u := range h.uppers {
		if u > upper {
			break
		}
		at = h.cumulative[i]
	}
	return at
}

// since returns the observations made after prev. A histogram that shrank (its process
// restarted) or changed buckets counts from zero, so the whole of h is new.
func (h histogram) since(prev histogram) histogram {
	if h.count < prev.count || !slices.Equal(h.uppers, prev.uppers) {
		return h
	}
	out := histogram{count: h.count - prev.count, sum: h.sum - prev.sum, uppers: h.uppers, cumulative: make([]float64, len(h.cumulative))}
	for i := range h.cumulative {
		out.cumulative[i] = max(0, h.cumulative[i]-prev.cumulative[i])
	}
	return out
}

// p99 estimates the 99th percentile as Prometheus' histogram_quantile does: linear interpolation
// inside the bucket holding the rank; a rank beyond the last finite bound returns that bound.
func (h histogram) p99() Quantile {
	if h.count <= 0 {
		return Quantile{}
	}
	rank := 0.99 * h.count
	lower, below := 0.0, 0.0
	for i, upper := range h.uppers {
		if h.cumulative[i] >= rank {
			if upper <= 0 || h.cumulative[i] == below {
				return Quantile{Count: h.count, P99Seconds: upper}
			}
			return Quantile{Count: h.count, P99Seconds: lower + (upper-lower)*(rank-below)/(h.cumulative[i]-below)}
		}
		lower, below = upper, h.cumulative[i]
	}
	return Quantile{Count: h.count, P99Seconds: lower}
}

// counterSince is the increase of a counter from prev to cur; a counter that went down was reset
// by a restart, so all of cur is new.
func counterSince(prev, cur float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}
