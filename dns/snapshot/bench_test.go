package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/bulkhead-dev/bulkhead/dns/internal/fixture"
)

// BenchmarkLoadAtScale reads and verifies the snapshot of 10k services with 50k endpoints: the
// time a restarted node needs before it answers (index build comes on top).
func BenchmarkLoadAtScale(b *testing.B) {
	st := &State{SyncedAt: time.Now()}
	http := fixture.Port{Name: "http", Port: 80}
	for i := range 10000 {
		name := fmt.Sprintf("svc-%05d", i)
		st.Services = append(st.Services, fixture.ClusterIPService("lab", name, []string{fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)}, http))
		var eps []fixture.Endpoint
		for j := range 5 {
			k := i*5 + j
			eps = append(eps, fixture.Endpoint{IP: fmt.Sprintf("10.%d.%d.%d", 1+k/62500, k/250%250, k%250+1)})
		}
		st.EndpointSlices = append(st.EndpointSlices, fixture.Slice("lab", name, name+"-x", discoveryv1.AddressTypeIPv4, []fixture.Port{http}, eps...))
	}
	path := filepath.Join(b.TempDir(), "dns.snapshot")
	if err := Write(path, st); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(path); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
}
