package check

// JudgeResources judges every resource of a wave. CPU comes first: its prediction is the load
// the seat and memory demand are rescaled to.
func JudgeResources(w Wave) []Result {
	w.Timing = w.Timing.WithDefaults(w.Soak)
	cpu := busiest(w, judge(w, cpuMeter, Load{}))
	load := loadOf(w, cpu)
	memory := judge(w, memoryMeter, load)
	memory.Halts = append(memory.Halts, memoryMeasured(w)...)
	seats := judge(w, seatMeter, load)
	return []Result{cpu, memory, seats}
}

// loadOf is the servers' CPU utilisation during the wave and with the whole fleet running: what
// everything else used before the rollout plus what the fleet is predicted to use.
func loadOf(w Wave, cpu Result) Load {
	capacity := w.Limits[CPU].Capacity
	if capacity <= 0 || w.Reference.ServerCPU.Samples == 0 || cpu.Utilization == 0 {
		return Load{}
	}
	l := Load{Now: cpu.Utilization, Fleet: cpu.Utilization, Known: true}
	if cpu.Prediction != nil {
		others := w.Reference.ServerCPU.Mean - w.Reference.LaneCPU.Mean
		l.Fleet = (others + cpu.Prediction.Total.Mean) / capacity
	}
	return l
}
