package controlplane

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/rest"
)

// endpointBehind serves handler over TLS and returns a Scraper for it (no discovery: the
// endpoint is not a kube-apiserver) and the replica name errors must carry.
func endpointBehind(t *testing.T, handler http.HandlerFunc, timeout time.Duration) (*Scraper, string) {
	t.Helper()
	srv := httptest.NewTLSServer(handler)
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	s, err := NewScraper(&rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca}}, Options{Timeout: timeout, NoDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	return s, strings.TrimPrefix(srv.URL, "https://")
}

func TestScrapeNamesTheReplicaAndTheCauseOfEveryFailure(t *testing.T) {
	good := after.String()
	cases := []struct {
		name    string
		handler http.HandlerFunc
		wantErr []string
	}{
		{"forbidden", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `forbidden: User "system:serviceaccount:obs:top" cannot get path "/metrics"`, http.StatusForbidden)
		}, []string{"403 Forbidden", "nonResourceURLs /metrics", `cannot get path "/metrics"`}},
		{"a web page", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html>hello</html>"))
		}, []string{`content type "text/html" is not a Prometheus exposition format`}},
		{"garbage", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", textFormat)
			w.Write([]byte("apiserver_flowcontrol_nominal_limit_seats{priority_level=\"x\" 3\n"))
		}, []string{"malformed text metrics"}},
		{"truncated body", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", textFormat)
			w.Header().Set("Content-Length", "100000")
			w.Write([]byte(good[:1000]))
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}, []string{"truncated response", "after 1000 bytes"}},
		{"too slow", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		}, []string{"unreachable", "timed out after 300ms"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, replica := endpointBehind(t, c.handler, 300*time.Millisecond)
			snap := s.Scrape(context.Background())
			if len(snap.Replicas) != 1 {
				t.Fatalf("scraped %d replicas, want the kubeconfig's server only", len(snap.Replicas))
			}
			got := snap.Replicas[0]
			if got.Err == nil {
				t.Fatalf("no error; families %d", len(got.Families))
			}
			for _, want := range append(c.wantErr, "replica "+replica+": ") {
				if !strings.Contains(got.Err.Error(), want) {
					t.Errorf("error %q does not contain %q", got.Err, want)
				}
			}
		})
	}
}

func TestScrapeAsksForProtobufAndReadsWhatIsSent(t *testing.T) {
	for _, format := range []string{"text", "protobuf"} {
		t.Run(format, func(t *testing.T) {
			s, replica := endpointBehind(t, func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasPrefix(r.Header.Get("Accept"), "application/vnd.google.protobuf") {
					http.Error(w, "want protobuf first in Accept, got "+r.Header.Get("Accept"), http.StatusBadRequest)
					return
				}
				if format == "text" {
					w.Header().Set("Content-Type", textFormat)
					w.Write([]byte(after.String()))
					return
				}
				w.Header().Set("Content-Type", `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`)
				w.Write(protobufOf(t, after.String()))
			}, time.Second)
			got := s.ScrapeReplica(context.Background(), replica)
			if got.Err != nil || got.Families[metricDispatched] == nil || got.Bytes == 0 || got.Taken.IsZero() {
				t.Fatalf("scrape = err %v, %d families, %d bytes", got.Err, len(got.Families), got.Bytes)
			}
		})
	}
}

func TestReplicasOfListsReadyAddressesOnTheHTTPSPort(t *testing.T) {
	str := func(s string) *string { return &s }
	port := func(p int32) *int32 { return &p }
	no := false
	slices := []*discoveryv1.EndpointSlice{
		{
			Ports: []discoveryv1.EndpointPort{{Name: str("https"), Port: port(6443)}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.0.0.2"}},
				{Addresses: []string{"10.0.0.1"}},
				{Addresses: []string{"10.0.0.3"}, Conditions: discoveryv1.EndpointConditions{Ready: &no}},
				{Addresses: []string{"fd00::1"}},
			},
		},
		{Ports: []discoveryv1.EndpointPort{{Port: port(443)}}, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}}},
		{Ports: []discoveryv1.EndpointPort{{Name: str("a"), Port: port(1)}, {Name: str("b"), Port: port(2)}}, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.9.9.9"}}}},
	}
	got := strings.Join(ReplicasOf(slices), " ")
	if want := "10.0.0.1:443 10.0.0.1:6443 10.0.0.2:6443 [fd00::1]:6443"; got != want {
		t.Errorf("ReplicasOf = %s, want %s", got, want)
	}
}

func TestWithoutDiscoveryTheKubeconfigServerIsTheReplica(t *testing.T) {
	cases := map[string]string{
		"https://api.example.com":      "api.example.com:443",
		"https://api.example.com:6443": "api.example.com:6443",
		"https://[fd00::1]:6443/":      "[fd00::1]:6443",
		"http://127.0.0.1":             "127.0.0.1:80",
	}
	for host, want := range cases {
		s, err := NewScraper(&rest.Config{Host: host}, Options{NoDiscovery: true})
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		if got := s.Replicas(); len(got) != 1 || got[0] != want {
			t.Errorf("%s: replicas %v, want [%s]", host, got, want)
		}
	}
	if _, err := NewScraper(&rest.Config{Host: "not a url"}, Options{}); err == nil || !strings.Contains(err.Error(), `kubeconfig server "not a url"`) {
		t.Errorf("bad server: error %v", err)
	}
}

func TestARefusedConnectionIsReportedOnceAndPlainly(t *testing.T) {
	// Nothing listens on port 1 of the loopback address.
	s, err := NewScraper(&rest.Config{Host: "https://127.0.0.1:1"}, Options{NoDiscovery: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := s.Scrape(context.Background()).Replicas[0]
	msg := got.Err.Error()
	if !strings.HasPrefix(msg, "replica 127.0.0.1:1: unreachable: GET https://127.0.0.1:1/metrics: dial tcp 127.0.0.1:1:") || strings.Contains(msg, `Get "`) {
		t.Errorf("error %q: want the replica, the URL once and the dial error", msg)
	}
}
