package check

import (
	"fmt"

	"github.com/bulkhead-dev/bulkhead/rollout/predict"
)

// BytesPerSeat is the memory a request in flight holds per APF seat it is estimated at: the API
// server's resident memory grew by 1.7–2.6 MiB per seat the seed's agents held in the lab
// (heap: 1.3–1.6 MiB; one 10-seat LIST of 4,000 pods in flight held about 13 MiB of heap).
// APF's estimate is capped at 10 seats, so for responses above a few megabytes this is a lower
// bound; their CPU is what gates them first.
const BytesPerSeat = 2.5 * (1 << 20)

// memoryResolution is the smallest memory demand a reading tells apart: a mebibyte.
const memoryResolution = 1 << 20

var memoryMeter = meter{resource: Memory, slowed: true,
	measure: func(w Wave) predict.Measurement {
		return predict.Measure(samplesOf(w.Intervals, func(iv Interval) float64 { return BytesPerSeat * iv.SeatSeconds }), w.SteadyFrom(), w.Agents.Started, memoryResolution)
	},
	perRequest: func(burst []Interval) float64 {
		return predict.PerRequest(samplesOf(burst, func(iv Interval) float64 { return BytesPerSeat * iv.SeatSeconds }))
	},
}

// memoryMeasured halts when the servers' resident memory during the wave already crossed the
// ceiling of their limit: whatever the prediction, the next step could be an OOM kill.
func memoryMeasured(w Wave) []string {
	l := w.Limits[Memory]
	if !l.Known() {
		return nil
	}
	ceiling := Ceilings[Memory] * l.Capacity
	var peak float64
	for _, iv := range w.Intervals {
		if iv.MemoryKnown {
			peak = max(peak, iv.ServerMemory)
		}
	}
	if peak <= ceiling {
		return nil
	}
	return []string{fmt.Sprintf("memory: the API servers hold %s, above %.0f%% of their %s",
		Amount(Memory, peak), 100*Ceilings[Memory], capacity(Memory, l.Capacity))}
}
