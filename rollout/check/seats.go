package check

import "github.com/bulkhead-dev/bulkhead/rollout/predict"

// seatResolution is the smallest seat demand a reading tells apart.
const seatResolution = 0.005

var seatMeter = meter{resource: Seats, slowed: true,
	measure: func(w Wave) predict.Measurement {
		return predict.Measure(samplesOf(w.Intervals, func(iv Interval) float64 { return iv.SeatSeconds }), w.SteadyFrom(), w.Agents.Started, seatResolution)
	},
	perRequest: func(burst []Interval) float64 {
		return predict.PerRequest(samplesOf(burst, func(iv Interval) float64 { return iv.SeatSeconds }))
	},
}

func samplesOf(intervals []Interval, used func(Interval) float64) []predict.Sample {
	out := make([]predict.Sample, 0, len(intervals))
	for _, iv := range intervals {
		out = append(out, iv.sample(used(iv)))
	}
	return out
}
