package server

import (
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// countedTypes get their own label value; every other query type is counted as "other".
var countedTypes = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR, dns.TypeCNAME,
	dns.TypeTXT, dns.TypeMX, dns.TypeNS, dns.TypeSOA, dns.TypeANY, dns.TypeHTTPS}

// countedRcodes as above; BADVERS (16) is carried in the OPT record, counted as "BADVERS".
var countedRcodes = []int{dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure,
	dns.RcodeNameError, dns.RcodeNotImplemented, dns.RcodeRefused, dns.RcodeBadVers}

// Source says which path produced an answer; it labels the latency histogram.
type Source int

const (
	SourceCluster Source = iota
	SourceUpstream
	SourceError
	sourceCount
)

var sourceNames = [sourceCount]string{"cluster", "upstream", "error"}

// Metrics are the server's Prometheus metrics, resolved once so the hot path only adds.
type Metrics struct {
	requests  [][]prometheus.Counter // [type index][rcode index]
	latency   [sourceCount]prometheus.Observer
	dropped   prometheus.Counter
	truncated prometheus.Counter
}

// NewMetrics registers the server's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bulkhead_dns_requests_total",
		Help: "DNS queries answered, by query type and response code.",
	}, []string{"type", "rcode"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "bulkhead_dns_request_duration_seconds",
		Help:    "Time from reading a query to writing its answer, by the path that answered it.",
		Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5},
	}, []string{"source"})
	dropped := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bulkhead_dns_dropped_total",
		Help: "Packets dropped without an answer: shorter than a DNS header, or not a query.",
	})
	truncated := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bulkhead_dns_truncated_total",
		Help: "UDP answers replaced by an empty answer with the TC bit because they were too large.",
	})
	reg.MustRegister(requests, latency, dropped, truncated)
	m := &Metrics{dropped: dropped, truncated: truncated}
	for i := 0; i <= len(countedTypes); i++ {
		typeName := "other"
		if i < len(countedTypes) {
			typeName = dns.TypeToString[countedTypes[i]]
		}
		row := make([]prometheus.Counter, len(countedRcodes)+1)
		for j := range row {
			rcodeName := "other"
			if j < len(countedRcodes) {
				rcodeName = dns.RcodeToString[countedRcodes[j]]
			}
			row[j] = requests.WithLabelValues(typeName, rcodeName)
		}
		m.requests = append(m.requests, row)
	}
	for s := range sourceCount {
		m.latency[s] = latency.WithLabelValues(sourceNames[s])
	}
	return m
}

func (m *Metrics) observe(qtype uint16, rcode int, source Source, start time.Time) {
	t := len(countedTypes)
	for i, c := range countedTypes {
		if c == qtype {
			t = i
			break
		}
	}
	r := len(countedRcodes)
	for i, c := range countedRcodes {
		if c == rcode {
			r = i
			break
		}
	}
	m.requests[t][r].Inc()
	m.latency[source].Observe(time.Since(start).Seconds())
}
