package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Snapshot is one scrape of every known kube-apiserver replica.
type Snapshot struct {
	Replicas []ReplicaScrape
	// Source says where the replicas were read: "replicas discovered", "balanced address
	// 10.0.0.1:443", "prometheus http://…".
	Source string
	// Believed is how many API server processes there are by a count that does not depend on
	// reaching them (the identity Leases), 0 when unknown; BelievedFrom says what it rests on,
	// or why it is unknown.
	Believed     int
	BelievedFrom string
}

// ReplicaScrape is one replica's /metrics at one moment, or the reason it could not be read.
type ReplicaScrape struct {
	// Replica names the replica as host:port.
	Replica string
	// Taken is when the response arrived; rates use it, not the wall clock of the caller.
	Taken    time.Time
	Duration time.Duration
	Bytes    int64
	// Families holds the parsed metric families bulkhead reads, by name.
	Families map[string]*dto.MetricFamily
	// Err is set when the replica could not be scraped or its answer could not be parsed.
	Err error
}

// families bulkhead reads; everything else in /metrics is dropped after parsing.
const (
	metricDispatched        = "apiserver_flowcontrol_dispatched_requests_total"
	metricRejected          = "apiserver_flowcontrol_rejected_requests_total"
	metricExecutingSeats    = "apiserver_flowcontrol_current_executing_seats"
	metricExecutingRequests = "apiserver_flowcontrol_current_executing_requests"
	metricInQueue           = "apiserver_flowcontrol_current_inqueue_requests"
	metricWait              = "apiserver_flowcontrol_request_wait_duration_seconds"
	metricExecution         = "apiserver_flowcontrol_request_execution_seconds"
	metricEstimatedSeats    = "apiserver_flowcontrol_work_estimated_seats"
	metricNominalSeats      = "apiserver_flowcontrol_nominal_limit_seats"
	metricCurrentSeats      = "apiserver_flowcontrol_current_limit_seats"
	metricSLI               = "apiserver_request_sli_duration_seconds"
	metricSeatUtilization   = "apiserver_flowcontrol_priority_level_seat_utilization"
	metricProcessStart      = "process_start_time_seconds"

	// The process's own resources (see Resources).
	metricCPUSeconds    = "process_cpu_seconds_total"
	metricGOMAXPROCS    = "go_sched_gomaxprocs_threads"
	metricResident      = "process_resident_memory_bytes"
	metricGoMemLimit    = "go_gc_gomemlimit_bytes"
	metricHeapInuse     = "go_memstats_heap_inuse_bytes"
	metricTransmitBytes = "process_network_transmit_bytes_total"
	metricResponseSizes = "apiserver_response_sizes"
)

var wantedFamilies = map[string]bool{
	metricDispatched: true, metricRejected: true, metricExecutingSeats: true, metricExecutingRequests: true,
	metricInQueue: true, metricWait: true, metricExecution: true, metricEstimatedSeats: true,
	metricNominalSeats: true, metricCurrentSeats: true, metricSLI: true, metricProcessStart: true, metricSeatUtilization: true,
	metricCPUSeconds: true, metricGOMAXPROCS: true, metricResident: true, metricGoMemLimit: true, metricHeapInuse: true,
	metricTransmitBytes: true, metricResponseSizes: true,
}

// acceptHeader asks for delimited protobuf, which is cheaper to parse, and accepts text.
const acceptHeader = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3`

// ParseMetrics decodes a /metrics body in the exposition format its Content-Type names (Prometheus
// text or delimited protobuf) and keeps the families bulkhead reads. It fails for other content
// types, malformed or truncated input, and bodies without API Priority and Fairness metrics.
func ParseMetrics(body []byte, contentType string) (map[string]*dto.MetricFamily, error) {
	format, err := exposition(contentType)
	if err != nil {
		return nil, err
	}
	decoder := expfmt.NewDecoder(bytes.NewReader(body), format)
	families := make(map[string]*dto.MetricFamily, len(wantedFamilies))
	for {
		family := &dto.MetricFamily{}
		err := decoder.Decode(family)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("malformed %s metrics: %w", formatName(format), err)
		}
		if wantedFamilies[family.GetName()] {
			families[family.GetName()] = family
		}
	}
	if _, ok := families[metricNominalSeats]; !ok {
		return nil, fmt.Errorf("no %s in %d bytes of metrics: not a kube-apiserver, or API Priority and Fairness is off", metricNominalSeats, len(body))
	}
	return families, nil
}

func exposition(contentType string) (expfmt.Format, error) {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", fmt.Errorf("content type %q is not a Prometheus exposition format: %w", contentType, err)
	}
	format := expfmt.ResponseFormat(http.Header{"Content-Type": []string{contentType}})
	switch format.FormatType() {
	case expfmt.TypeTextPlain, expfmt.TypeProtoDelim:
		return format, nil
	}
	return "", fmt.Errorf("content type %q is not a Prometheus exposition format (want text/plain or delimited protobuf)", strings.TrimSpace(mediaType))
}

func formatName(format expfmt.Format) string {
	if format.FormatType() == expfmt.TypeProtoDelim {
		return "protobuf"
	}
	return "text"
}

// Fresh reports whether every replica that both snapshots read was read again in cur: Analyze
// would rate them all (none ReplicaStale).
func Fresh(prev, cur Snapshot) bool {
	before := map[string]ReplicaScrape{}
	for _, p := range prev.Replicas {
		before[p.Replica] = p
	}
	for _, c := range cur.Replicas {
		if p, ok := before[c.Replica]; ok && sameScrape(p, c) {
			return false
		}
	}
	return true
}

// sameScrape says whether cur holds no newer scrape of a replica than prev: both read, cur taken
// no later (a Prometheus that has not scraped since).
func sameScrape(prev, cur ReplicaScrape) bool {
	return prev.Err == nil && cur.Err == nil && !cur.Taken.After(prev.Taken)
}
