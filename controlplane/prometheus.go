package controlplane

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
)

// histogramFamilies are the wanted families Prometheus stores as _bucket, _sum and _count series.
var histogramFamilies = []string{metricWait, metricExecution, metricEstimatedSeats, metricSLI, metricSeatUtilization, metricResponseSizes}

// PrometheusSource reads the series bulkhead needs from a Prometheus HTTP API instead of scraping
// the apiservers, for control planes that only a (managed) Prometheus can observe. Each value of
// the `instance` label is a replica. SnapshotAt gives the same Snapshot a Scraper would have taken
// at the time of the samples, so Analyze and everything after it is shared.
type PrometheusSource struct {
	base     *url.URL
	client   *http.Client
	selector string
}

// NewPrometheusSource reads from the Prometheus at baseURL (e.g. http://prometheus:9090), selecting
// the kube-apiserver's series with selector, label matchers such as job="apiserver".
func NewPrometheusSource(baseURL, selector string, client *http.Client) (*PrometheusSource, error) {
	base, err := url.Parse(baseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("prometheus URL %q: want http(s)://host[:port][/path]", baseURL)
	}
	selector = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(selector), "{"), "}"))
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &PrometheusSource{base: base, client: client, selector: selector}, nil
}

func (p *PrometheusSource) matchers(extra string) string {
	var parts []string
	for _, part := range []string{extra, p.selector} {
		if part != "" {
			parts = append(parts, part)
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// SnapshotAt evaluates the series as of t with two instant queries: every wanted series, and the
// time of each instance's latest sample (rates are computed over the samples' own times).
func (p *PrometheusSource) SnapshotAt(ctx context.Context, t time.Time) (Snapshot, error) {
	var names []string
	for name := range wantedFamilies {
		if slices.Contains(histogramFamilies, name) {
			names = append(names, name+"_bucket", name+"_sum", name+"_count")
		} else {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	series, err := p.query(ctx, p.matchers(`__name__=~"`+strings.Join(names, "|")+`"`), t)
	if err != nil {
		return Snapshot{}, err
	}
	if len(series) == 0 {
		return Snapshot{}, fmt.Errorf("prometheus %s has no kube-apiserver series matching %s at %s", p.base, p.matchers(""), t.UTC().Format(time.RFC3339))
	}
	taken, err := p.query(ctx, "timestamp("+p.matchers(`__name__="`+metricNominalSeats+`"`)+")", t)
	if err != nil {
		return Snapshot{}, err
	}
	takenAt := map[string]time.Time{}
	for _, s := range taken {
		sec, frac := math.Modf(float64(s.Value))
		takenAt[string(s.Metric[model.InstanceLabel])] = time.Unix(int64(sec), int64(frac*1e9))
	}

	byInstance := map[string][]*model.Sample{}
	for _, s := range series {
		instance := string(s.Metric[model.InstanceLabel])
		byInstance[instance] = append(byInstance[instance], s)
	}
	var snap Snapshot
	for _, instance := range slices.Sorted(maps.Keys(byInstance)) {
		r := ReplicaScrape{Replica: instance, Taken: cmp.Or(takenAt[instance], t), Families: familiesOf(byInstance[instance])}
		if _, ok := r.Families[metricNominalSeats]; !ok {
			r.Err = fmt.Errorf("replica %s: no %s in prometheus %s at %s", instance, metricNominalSeats, p.base, t.UTC().Format(time.RFC3339))
			r.Families = nil
		}
		snap.Replicas = append(snap.Replicas, r)
	}
	return snap, nil
}

// familiesOf rebuilds metric families from flat samples: plain series become untyped metrics,
// _bucket/_sum/_count series of a histogram family one histogram per label set.
func familiesOf(samples []*model.Sample) map[string]*dto.MetricFamily {
	families := map[string]*dto.MetricFamily{}
	histograms := map[string]map[model.Fingerprint]*dto.Metric{}
	for _, s := range samples {
		name := string(s.Metric[model.MetricNameLabel])
		value := float64(s.Value)
		base, part := name, ""
		for _, h := range histogramFamilies {
			if suffix, ok := strings.CutPrefix(name, h+"_"); ok && (suffix == "bucket" || suffix == "sum" || suffix == "count") {
				base, part = h, suffix
			}
		}
		family, ok := families[base]
		if !ok {
			family = &dto.MetricFamily{Name: &base}
			families[base] = family
		}
		if part == "" {
			family.Metric = append(family.Metric, &dto.Metric{Label: labelPairs(s.Metric), Untyped: &dto.Untyped{Value: &value}})
			continue
		}
		labels := s.Metric.Clone()
		delete(labels, model.MetricNameLabel)
		delete(labels, model.BucketLabel)
		if histograms[base] == nil {
			histograms[base] = map[model.Fingerprint]*dto.Metric{}
		}
		m, ok := histograms[base][labels.Fingerprint()]
		if !ok {
			m = &dto.Metric{Label: labelPairs(model.Metric(labels)), Histogram: &dto.Histogram{}}
			histograms[base][labels.Fingerprint()] = m
			family.Metric = append(family.Metric, m)
		}
		switch part {
		case "sum":
			m.Histogram.SampleSum = &value
		case "count":
			m.Histogram.SampleCountFloat = &value
		case "bucket":
			upper, err := strconv.ParseFloat(string(s.Metric[model.BucketLabel]), 64)
			if err == nil {
				m.Histogram.Bucket = append(m.Histogram.Bucket, &dto.Bucket{UpperBound: &upper, CumulativeCountFloat: &value})
			}
		}
	}
	for _, byLabels := range histograms {
		for _, m := range byLabels {
			slices.SortFunc(m.Histogram.Bucket, func(a, b *dto.Bucket) int { return cmp.Compare(a.GetUpperBound(), b.GetUpperBound()) })
		}
	}
	return families
}

func labelPairs(metric model.Metric) []*dto.LabelPair {
	var pairs []*dto.LabelPair
	for _, name := range slices.Sorted(maps.Keys(metric)) {
		if name == model.MetricNameLabel {
			continue
		}
		n, v := string(name), string(metric[name])
		pairs = append(pairs, &dto.LabelPair{Name: &n, Value: &v})
	}
	return pairs
}

// query runs one instant query through /api/v1/query.
func (p *PrometheusSource) query(ctx context.Context, promql string, t time.Time) (model.Vector, error) {
	endpoint := p.base.JoinPath("api", "v1", "query")
	form := url.Values{"query": {promql}, "time": {strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', 3, 64)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("prometheus query %s: %w", promql, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("prometheus %s unreachable: %w", p.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: reading the answer: %w", p.base, err)
	}
	var answer struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string       `json:"resultType"`
			Result     model.Vector `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || answer.Status == "" {
		snippet := string(body[:min(len(body), 200)])
		return nil, fmt.Errorf("%s is not a Prometheus query API (HTTP %s): %q", endpoint, resp.Status, snippet)
	}
	if answer.Status != "success" {
		return nil, fmt.Errorf("prometheus query %s failed (HTTP %s): %s: %s", promql, resp.Status, answer.ErrorType, answer.Error)
	}
	if answer.Data.ResultType != "vector" {
		return nil, fmt.Errorf("prometheus query %s: result type %q, want vector", promql, answer.Data.ResultType)
	}
	return answer.Data.Result, nil
}
