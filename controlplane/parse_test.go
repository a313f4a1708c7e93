package controlplane

import (
	"bytes"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestParseMetricsRejectsWhatIsNotAnAPIServersMetrics(t *testing.T) {
	good := after.String()
	cases := []struct {
		name, contentType, body, wantErr string
	}{
		{"garbage", textFormat, "\x00\x01 this is not { metrics", "malformed text metrics"},
		{"truncated inside a label set", textFormat, good[:strings.Index(good, "apiserver_flowcontrol_dispatched_requests_total{")+60], "malformed text metrics"},
		{"HTML page", "text/html; charset=utf-8", "<html><body>login</body></html>", `content type "text/html" is not a Prometheus exposition format`},
		{"JSON API answer", "application/json", `{"kind":"Status"}`, `content type "application/json" is not a Prometheus exposition format`},
		{"no content type", "", good, "is not a Prometheus exposition format"},
		{"JSON served as text", textFormat, `{"kind":"Status","code":403}`, "malformed text metrics"},
		{"another program's metrics", textFormat, "# TYPE go_goroutines gauge\ngo_goroutines 12\n", "no apiserver_flowcontrol_nominal_limit_seats"},
		{"truncated protobuf", string(expfmt.NewFormat(expfmt.TypeProtoDelim)), string(protobufOf(t, good)[:200]), "malformed protobuf metrics"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			families, err := ParseMetrics([]byte(c.body), c.contentType)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("ParseMetrics error = %v, want one containing %q", err, c.wantErr)
			}
			if families != nil {
				t.Errorf("families returned with an error: %d", len(families))
			}
		})
	}
}

// protobufOf re-encodes exposition text as delimited protobuf, the format a kube-apiserver sends
// when asked for it.
func protobufOf(t testing.TB, text string) []byte {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse text: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeProtoDelim))
	for _, name := range slices.Sorted(maps.Keys(families)) {
		if err := enc.Encode(families[name]); err != nil {
			t.Fatalf("encode %s: %v", name, err)
		}
	}
	return buf.Bytes()
}

func TestParseMetricsReadsTextAndProtobufAlike(t *testing.T) {
	text := after.String()
	fromText, err := ParseMetrics([]byte(text), textFormat)
	if err != nil {
		t.Fatal(err)
	}
	fromProto, err := ParseMetrics(protobufOf(t, text), string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	if err != nil {
		t.Fatal(err)
	}
	a := Analyze(Snapshot{Replicas: []ReplicaScrape{{Replica: "a", Taken: t0, Families: fromText}}}, Snapshot{Replicas: []ReplicaScrape{{Replica: "a", Taken: t0, Families: fromText}}})
	b := Analyze(Snapshot{Replicas: []ReplicaScrape{{Replica: "a", Taken: t0, Families: fromProto}}}, Snapshot{Replicas: []ReplicaScrape{{Replica: "a", Taken: t0, Families: fromProto}}})
	if !reflect.DeepEqual(a, b) {
		t.Errorf("text and protobuf readings differ:\n%+v\n%+v", a, b)
	}
	if len(fromText) != len(fromProto) || len(fromText) < 10 {
		t.Errorf("kept %d families from text, %d from protobuf", len(fromText), len(fromProto))
	}
}
