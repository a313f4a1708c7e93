package cli

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/bulkhead-dev/bulkhead/controlplane"
)

// addMetricsSourceFlags binds where the gate reads the API servers' metrics, the same for
// `bulkhead rollout` and `bulkhead controller`.
func addMetricsSourceFlags(f *pflag.FlagSet, o *controlplane.SourceOptions) {
	f.StringVar(&o.Kind, "metrics-source", "auto", "where the gate reads the API servers' metrics: "+strings.Join(controlplane.SourceKinds, ", ")+
		" (auto: every replica the kubernetes EndpointSlice lists, or one balanced address scraped per process when the identity Leases count more API servers than it lists)")
	f.StringVar(&o.Prometheus, "prometheus", "", "read the API servers' metrics from this Prometheus (http(s)://host:port) instead of scraping them")
	f.StringVar(&o.Selector, "prometheus-selector", "", "with --prometheus: label matchers selecting the kube-apiserver series (default "+controlplane.DefaultPrometheusSelector+")")
	f.StringVar(&o.TokenFile, "prometheus-token-file", "", "with --prometheus: a file holding the bearer token to send (read at every query)")
	f.StringVar(&o.CAFile, "prometheus-ca-file", "", "with --prometheus: the CA bundle that Prometheus's HTTPS certificate verifies against")
}
