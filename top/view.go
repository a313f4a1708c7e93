package top

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/controlplane"
)

// SortKey orders the flow table.
type SortKey string

// Sort keys, in the order the s key cycles through them.
const (
	BySeatSeconds SortKey = "seats"
	ByRequests    SortKey = "rps"
	ByRejected    SortKey = "rejected"
	ByWait        SortKey = "wait"
	ByQueued      SortKey = "queued"
	ByName        SortKey = "name"
)

var sortKeys = []SortKey{BySeatSeconds, ByRequests, ByRejected, ByWait, ByQueued, ByName}

// ParseSortKey accepts one of the sort key names.
func ParseSortKey(s string) (SortKey, error) {
	if k := SortKey(s); slices.Contains(sortKeys, k) {
		return k, nil
	}
	names := make([]string, len(sortKeys))
	for i, k := range sortKeys {
		names[i] = string(k)
	}
	return "", fmt.Errorf("unknown sort key %q: want one of %s", s, strings.Join(names, ", "))
}

// next is the sort key after k, wrapping around.
func (k SortKey) next() SortKey {
	i := slices.Index(sortKeys, k)
	return sortKeys[(i+1)%len(sortKeys)]
}

// View is how a Reading is shown.
type View struct {
	Sort SortKey
	// PerReplica shows each replica's flows instead of the sum over replicas.
	PerReplica bool
	// MaxFlows limits the rows of each flow table; 0 shows all.
	MaxFlows int
}

// WriteJSON writes the Reading as indented JSON; its shape is documented in controlplane/README.md.
func WriteJSON(w io.Writer, r controlplane.Reading) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write reading as JSON: %w", err)
	}
	return nil
}

// Render writes the Reading as a text table: a header with the replicas (how many the sums
// cover, and each one's state), the SLO state per verb and scope and the seats in use against
// capacity, then the flows.
func Render(w io.Writer, r controlplane.Reading, v View) error {
	if v.Sort == "" {
		v.Sort = BySeatSeconds
	}
	var b strings.Builder
	ending := "no replica read"
	if !r.Window.To.IsZero() {
		ending = "ending " + r.Window.To.UTC().Format(time.TimeOnly)
	}
	fmt.Fprintf(&b, "bulkhead top  window %.1fs %s  sort %s  view %s\n", r.Window.Seconds, ending, v.Sort, map[bool]string{false: "summed", true: "per replica"}[v.PerReplica])
	// The sums below cover only the replicas read: say how many of them that is.
	fmt.Fprintf(&b, "REPLICAS %d of %d read", r.Coverage.Read, r.Coverage.Replicas)
	if r.Coverage.Rated != r.Coverage.Read {
		fmt.Fprintf(&b, ", rates from %d", r.Coverage.Rated)
	}
	b.WriteString(": ")
	for i, rep := range r.Replicas {
		if i > 0 {
			b.WriteString(" · ")
		}
		fmt.Fprintf(&b, "%s %s", rep.Replica, rep.State)
		if rep.Error != "" {
			fmt.Fprintf(&b, " (%s)", rep.Error)
		}
	}
	b.WriteString("\n")
	writeSLOs(&b, r.SLIs)
	writeSeats(&b, r.Seats)
	if !v.PerReplica {
		b.WriteString("\n")
		writeFlows(&b, r.Flows, v)
	} else {
		for _, rep := range r.Replicas {
			fmt.Fprintf(&b, "\nREPLICA %s %s\n", rep.Replica, rep.State)
			if rep.Load == nil {
				continue
			}
			writeSeats(&b, rep.Load.Seats)
			writeFlows(&b, rep.Load.Flows, v)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeSLOs(b *strings.Builder, slis []controlplane.SLI) {
	b.WriteString("SLO     ")
	shown := 0
	for _, s := range slis {
		if s.SLOSeconds == 0 {
			continue
		}
		state := "ok"
		if s.Breached {
			state = "BREACHED"
		}
		if shown > 0 {
			b.WriteString(" · ")
		}
		fmt.Fprintf(b, "%s/%s p99 %s ≤%gs %s", s.Verb, s.Scope, seconds(s.Latency.P99Seconds), s.SLOSeconds, state)
		shown++
	}
	if shown == 0 {
		b.WriteString("no calls with an SLO in the window")
	}
	b.WriteString("\n")
}

func writeSeats(b *strings.Builder, s controlplane.Seats) {
	fmt.Fprintf(b, "SEATS   executing %.0f of %.0f (nominal %.0f)  seat-seconds/s %.2f\n", s.Executing, s.Current, s.Nominal, s.SeatSecondsPerSecond)
}

func writeFlows(b *strings.Builder, flows []controlplane.FlowLoad, v View) {
	flows = slices.Clone(flows)
	slices.SortStableFunc(flows, less(v.Sort))
	if v.MaxFlows > 0 && len(flows) > v.MaxFlows {
		flows = flows[:v.MaxFlows]
	}
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FLOW SCHEMA\tPRIORITY LEVEL\tSEAT-S/S\tREQ/S\tSEATS\tQUEUED\tREJECTED/S\tWAIT P99")
	for _, f := range flows {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.1f\t%.0f\t%.0f\t%.1f\t%s\n", f.FlowSchema, f.PriorityLevel, f.SeatSecondsPerSecond,
			f.DispatchedPerSecond, f.ExecutingSeats, f.InQueue, f.RejectedPerSecond, quantile(f.Wait))
	}
	tw.Flush()
}

func less(k SortKey) func(a, b controlplane.FlowLoad) int {
	byName := func(a, b controlplane.FlowLoad) int {
		return cmp.Or(cmp.Compare(a.FlowSchema, b.FlowSchema), cmp.Compare(a.PriorityLevel, b.PriorityLevel))
	}
	desc := func(f func(controlplane.FlowLoad) float64) func(a, b controlplane.FlowLoad) int {
		return func(a, b controlplane.FlowLoad) int { return cmp.Or(cmp.Compare(f(b), f(a)), byName(a, b)) }
	}
	switch k {
	case ByRequests:
		return desc(func(f controlplane.FlowLoad) float64 { return f.DispatchedPerSecond })
	case ByRejected:
		return desc(func(f controlplane.FlowLoad) float64 { return f.RejectedPerSecond })
	case ByWait:
		return desc(func(f controlplane.FlowLoad) float64 { return f.Wait.P99Seconds })
	case ByQueued:
		return desc(func(f controlplane.FlowLoad) float64 { return f.InQueue })
	case ByName:
		return byName
	}
	return desc(func(f controlplane.FlowLoad) float64 { return f.SeatSecondsPerSecond })
}

func quantile(q controlplane.Quantile) string {
	if q.Count == 0 {
		return "-"
	}
	return seconds(q.P99Seconds)
}

func seconds(s float64) string {
	if s < 1 {
		return fmt.Sprintf("%.0fms", s*1000)
	}
	return fmt.Sprintf("%.2fs", s)
}
