package controlplane

import "testing"

// The cost of one reading per replica: parsing one captured /metrics body (text, or the protobuf
// a Scraper asks for) and analyzing two parsed snapshots. Run with
// go test ./controlplane -run '^$' -bench . -benchmem
func BenchmarkParseLabMetricsText(b *testing.B)     { benchmarkParse(b, "agent-1.prom.gz") }
func BenchmarkParseLabMetricsProtobuf(b *testing.B) { benchmarkParse(b, "agent-1.pb.gz") }

func benchmarkParse(b *testing.B, name string) {
	c := loadCapture(b, name)
	b.SetBytes(int64(len(c.body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMetrics(c.body, c.contentType); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(c.body)), "scraped-bytes")
}

func BenchmarkAnalyzeLabSnapshots(b *testing.B) {
	s := snapshotOf(b, "127.0.0.1:42797", "agent-0.prom.gz", "agent-1.prom.gz")
	b.ReportAllocs()
	var flows int
	for b.Loop() {
		flows = len(Analyze(s[0], s[1]).Flows)
	}
	b.ReportMetric(float64(flows), "flows")
}
