package breakglass

import (
	"errors"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/bulkhead-dev/bulkhead/controlplane"
)

func counterFamily(name string, byFlow map[string]float64) *dto.MetricFamily {
	f := &dto.MetricFamily{Name: ptr(name)}
	for flow, v := range byFlow {
		f.Metric = append(f.Metric, &dto.Metric{
			Label:   []*dto.LabelPair{{Name: ptr("priority_level"), Value: ptr(flow)}, {Name: ptr("flow_schema"), Value: ptr(flow)}},
			Counter: &dto.Counter{Value: ptr(v)},
		})
	}
	return f
}

func TestJailTrafficSumsReplicasAndSkipsUnreadableOnes(t *testing.T) {
	replica := func(rejected, dispatched map[string]float64) controlplane.ReplicaScrape {
		return controlplane.ReplicaScrape{Families: map[string]*dto.MetricFamily{
			"apiserver_flowcontrol_rejected_requests_total":   counterFamily("apiserver_flowcontrol_rejected_requests_total", rejected),
			"apiserver_flowcontrol_dispatched_requests_total": counterFamily("apiserver_flowcontrol_dispatched_requests_total", dispatched),
		}}
	}
	snap := controlplane.Snapshot{Replicas: []controlplane.ReplicaScrape{
		replica(map[string]float64{"jail-a": 100, "workload-low": 7}, map[string]float64{"jail-a": 5, "service-accounts": 900}),
		replica(map[string]float64{"jail-a": 20}, map[string]float64{"jail-a": 1}),
		{Err: errors.New("connection refused"), Families: replica(map[string]float64{"jail-a": 1e6}, nil).Families},
	}}
	got := JailTraffic(snap, []string{"jail-a", "jail-b"})
	if got["jail-a"] != (Traffic{Rejected: 120, Admitted: 6}) {
		t.Errorf("jail-a = %+v, want 120 rejected, 6 admitted (two readable replicas)", got["jail-a"])
	}
	if tr, ok := got["jail-b"]; !ok || tr != (Traffic{}) {
		t.Errorf("jail-b = %+v (present %v), want zeros: a jail nobody called", tr, ok)
	}
	if len(got) != 2 {
		t.Errorf("got flows %v, want only the named jails", got)
	}
}

func gaugeFamily(byLevel map[string]float64) *dto.MetricFamily {
	f := &dto.MetricFamily{Name: ptr("apiserver_flowcontrol_nominal_limit_seats")}
	for level, v := range byLevel {
		f.Metric = append(f.Metric, &dto.Metric{Label: []*dto.LabelPair{{Name: ptr("priority_level"), Value: ptr(level)}}, Gauge: &dto.Gauge{Value: ptr(v)}})
	}
	return f
}

func TestLaneSeatsReadsTheServersOwnSizing(t *testing.T) {
	levels := gaugeFamily(map[string]float64{LaneName: 24, "workload-low": 236, "global-default": 48, "exempt": 0})
	snap := controlplane.Snapshot{Replicas: []controlplane.ReplicaScrape{
		{Err: errors.New("timeout")},
		{Families: map[string]*dto.MetricFamily{"apiserver_flowcontrol_nominal_limit_seats": gaugeFamily(map[string]float64{"workload-low": 245})}},
		{Families: map[string]*dto.MetricFamily{"apiserver_flowcontrol_nominal_limit_seats": levels}},
	}}
	lane, total, ok := LaneSeats(snap)
	if !ok || lane != 24 || total != 308 {
		t.Fatalf("LaneSeats = %v of %v (ok %v), want 24 of 308 from the replica that knows the lane", lane, total, ok)
	}
	if _, _, ok := LaneSeats(controlplane.Snapshot{Replicas: snap.Replicas[:2]}); ok {
		t.Fatal("no replica reports the lane yet, but LaneSeats said it did")
	}
}
