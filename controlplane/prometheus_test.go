package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// prometheusOver answers instant queries the way a Prometheus that scraped the lab captures would:
// at a time before the midpoint of the two captures with the first, after it with the second.
// Queries other than the two SnapshotAt sends are refused, as Prometheus refuses bad PromQL.
func prometheusOver(t *testing.T, instance string, names ...string) (*httptest.Server, []capture) {
	t.Helper()
	var captures []capture
	var families []map[string]*dto.MetricFamily
	for _, name := range names {
		c := loadCapture(t, name)
		f, err := ParseMetrics(c.body, c.contentType)
		if err != nil {
			t.Fatal(err)
		}
		captures, families = append(captures, c), append(families, f)
	}
	midpoint := captures[0].taken.Add(captures[1].taken.Sub(captures[0].taken) / 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query := r.FormValue("query")
		at, err := strconv.ParseFloat(r.FormValue("time"), 64)
		if err != nil {
			http.Error(w, `{"status":"error","errorType":"bad_data","error":"bad time"}`, http.StatusBadRequest)
			return
		}
		i := 0
		if time.Unix(int64(at), 0).After(midpoint) {
			i = 1
		}
		var vector model.Vector
		switch {
		case query == `timestamp({__name__="apiserver_flowcontrol_nominal_limit_seats",job="apiserver"})`:
			vector = model.Vector{{Metric: model.Metric{"instance": model.LabelValue(instance), "job": "apiserver"}, Value: model.SampleValue(float64(captures[i].taken.UnixNano()) / 1e9)}}
		case strings.HasPrefix(query, `{__name__=~"apiserver_flowcontrol_current_executing_requests|`) && strings.HasSuffix(query, `",job="apiserver"}`):
			var all []*dto.MetricFamily
			for _, f := range families[i] {
				all = append(all, f)
			}
			vector, err = expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.TimeFromUnixNano(captures[i].taken.UnixNano())}, all...)
			if err != nil {
				t.Error(err)
			}
			for _, s := range vector {
				s.Metric["instance"], s.Metric["job"] = model.LabelValue(instance), "apiserver"
			}
		default:
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": "bad_data", "error": "unexpected query " + query})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": vector}})
	}))
	t.Cleanup(srv.Close)
	return srv, captures
}

func TestPrometheusSourceGivesTheSameReadingAsScraping(t *testing.T) {
	const instance = "10.0.0.1:6443"
	srv, captures := prometheusOver(t, instance, "reject-0.prom.gz", "reject-1.prom.gz")
	src, err := NewPrometheusSource(srv.URL, `{job="apiserver"}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	var snaps []Snapshot
	for _, c := range captures {
		s, err := src.SnapshotAt(context.Background(), c.taken.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, s)
	}
	fromPrometheus := Analyze(snaps[0], snaps[1])
	direct := snapshotOf(t, instance, "reject-0.prom.gz", "reject-1.prom.gz")
	scraped := Analyze(direct[0], direct[1])
	// Sample times pass through float64 seconds in the Prometheus API: equal to a microsecond.
	if diff := sameNumbers("", asJSON(t, fromPrometheus.Load), asJSON(t, scraped.Load)); diff != "" {
		t.Errorf("readings differ: %s", diff)
	}
	if res := fromPrometheus.Resources; res.CPUCores <= 0 || res.CPUCapacityCores != 2 || res.ResidentBytes <= 0 {
		t.Errorf("the servers' resources from Prometheus: %+v, want the capture's CPU, GOMAXPROCS and memory", res)
	}
	if d := fromPrometheus.Window.To.Sub(scraped.Window.To); d.Abs() > time.Microsecond {
		t.Errorf("window ends %s apart", d)
	}
	if len(fromPrometheus.Replicas) != 1 || fromPrometheus.Replicas[0].Replica != instance || fromPrometheus.Replicas[0].State != ReplicaOK {
		t.Errorf("replicas = %+v, want %s ok", fromPrometheus.Replicas, instance)
	}
}

func TestPrometheusSourceErrorsNameTheProblem(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		wantErr string
	}{
		{"not prometheus", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html>grafana</html>")) }, "is not a Prometheus query API"},
		{"query refused", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"status":"error","errorType":"bad_data","error":"parse error"}`))
		}, "failed (HTTP 400 Bad Request): bad_data: parse error"},
		{"no series", func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
		}, `no kube-apiserver series matching {job="apiserver"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.handler)
			defer srv.Close()
			src, err := NewPrometheusSource(srv.URL, `job="apiserver"`, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := src.SnapshotAt(context.Background(), time.Now()); err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("error = %v, want one containing %q", err, c.wantErr)
			}
		})
	}
	if _, err := NewPrometheusSource("prometheus:9090", "", nil); err == nil || !strings.Contains(err.Error(), "want http(s)://") {
		t.Errorf("a URL without scheme: error %v", err)
	}
}

func asJSON(t *testing.T, v any) any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameNumbers compares two decoded JSON values, numbers to a relative 1e-6; it describes the
// first difference, or returns "".
func sameNumbers(path string, a, b any) string {
	switch a := a.(type) {
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return fmt.Sprintf("%s: %v vs %v", path, a, b)
		}
		for k := range a {
			if d := sameNumbers(path+"."+k, a[k], bm[k]); d != "" {
				return d
			}
		}
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return fmt.Sprintf("%s: %v vs %v", path, a, b)
		}
		for i := range a {
			if d := sameNumbers(fmt.Sprintf("%s[%d]", path, i), a[i], bs[i]); d != "" {
				return d
			}
		}
	case float64:
		bf, ok := b.(float64)
		if !ok || !within(a, bf, 1e-6) {
			return fmt.Sprintf("%s: %v vs %v", path, a, b)
		}
	default:
		if !reflect.DeepEqual(a, b) {
			return fmt.Sprintf("%s: %v vs %v", path, a, b)
		}
	}
	return ""
}
