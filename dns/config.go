package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	miekgdns "github.com/miekg/dns"
	"k8s.io/client-go/rest"

	"github.com/bulkhead-dev/bulkhead/dns/upstream"
	"github.com/bulkhead-dev/bulkhead/internal/writable"
)

// Defaults of the command's flags.
const (
	DefaultListen        = "169.254.20.10:53"
	DefaultClusterDomain = "cluster.local"
	DefaultTTL           = 5 * time.Second
	DefaultMetrics       = "127.0.0.1:9253"
	DefaultSnapshotDelay = time.Second
)

// Config is what `bulkhead dns` needs to run.
type Config struct {
	// Listen is the IP:port answered on, UDP and TCP.
	Listen string
	// Snapshot is the snapshot file; its directory must exist.
	Snapshot string
	// ClusterDomain is the zone answered from Services and EndpointSlices.
	ClusterDomain string
	// Upstream is a resolv.conf path or comma-separated resolver addresses; empty refuses
	// names outside the cluster domain.
	Upstream string
	// TTL of cluster records, whole seconds.
	TTL time.Duration
	// MaxStale bounds serve-stale for upstream names (RFC 8767); zero takes 1 day.
	MaxStale time.Duration
	// Metrics is the IP:port of /metrics, /healthz and /readyz; empty disables them.
	Metrics string
	// SnapshotDelay coalesces snapshot writes; zero takes 1 s.
	SnapshotDelay time.Duration
	// Kube reaches the API server.
	Kube *rest.Config
	Log  *slog.Logger
}

// Validate checks the flags without touching the network (the snapshot's directory is checked
// for writability by creating and removing a file in it); Kube is checked by Start.
func (c Config) Validate() error {
	var errs []error
	if _, err := netip.ParseAddrPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: want IP:port, e.g. %s", c.Listen, DefaultListen))
	}
	if c.Snapshot == "" {
		errs = append(errs, errors.New("--snapshot is required: the file that keeps cluster records across restarts"))
	} else if st, err := os.Stat(filepath.Dir(c.Snapshot)); err != nil || !st.IsDir() {
		errs = append(errs, fmt.Errorf("--snapshot %q: directory %s does not exist", c.Snapshot, filepath.Dir(c.Snapshot)))
	} else if st, err := os.Stat(c.Snapshot); err == nil && st.IsDir() {
		errs = append(errs, fmt.Errorf("--snapshot %q is a directory, want a file path", c.Snapshot))
	} else if err := writable.Dir(filepath.Dir(c.Snapshot)); err != nil {
		// Ready with a snapshot that can never be written would lose every record at the next
		// restart during an outage: refuse now.
		errs = append(errs, fmt.Errorf("--snapshot %q: %w", c.Snapshot, err))
	}
	zone := miekgdns.CanonicalName(c.ClusterDomain)
	if _, ok := miekgdns.IsDomainName(zone); !ok || zone == "." {
		errs = append(errs, fmt.Errorf("--cluster-domain %q is not a domain name", c.ClusterDomain))
	}
	if c.Upstream != "" {
		if _, err := upstream.ParseServers(c.Upstream); err != nil {
			errs = append(errs, fmt.Errorf("--upstream: %w", err))
		}
	}
	if c.TTL < time.Second || c.TTL > 24*time.Hour || c.TTL%time.Second != 0 {
		errs = append(errs, fmt.Errorf("--ttl %v: want whole seconds between 1s and 24h", c.TTL))
	}
	if c.SnapshotDelay < 0 {
		errs = append(errs, fmt.Errorf("--snapshot-delay %v must not be negative", c.SnapshotDelay))
	}
	if c.MaxStale < 0 {
		errs = append(errs, fmt.Errorf("--max-stale %v must not be negative", c.MaxStale))
	}
	if c.Metrics != "" {
		if _, err := netip.ParseAddrPort(c.Metrics); err != nil {
			errs = append(errs, fmt.Errorf("--metrics %q: want IP:port, e.g. %s, or empty to disable", c.Metrics, DefaultMetrics))
		}
	}
	return errors.Join(errs...)
}
