package plan

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseWavesAcceptsPercentagesAndCounts(t *testing.T) {
	tests := []struct {
		in   string
		want []Wave
	}{
		{"1%,5%,25%,100%", []Wave{{Text: "1%", Percent: 1, IsPercent: true}, {Text: "5%", Percent: 5, IsPercent: true},
			{Text: "25%", Percent: 25, IsPercent: true}, {Text: "100%", Percent: 100, IsPercent: true}}},
		{"2, 10 ,50,100%", []Wave{{Text: "2", Count: 2}, {Text: "10", Count: 10}, {Text: "50", Count: 50},
			{Text: "100%", Percent: 100, IsPercent: true}}},
		{"0.5%,100%", []Wave{{Text: "0.5%", Percent: 0.5, IsPercent: true}, {Text: "100%", Percent: 100, IsPercent: true}}},
		{"100%", []Wave{{Text: "100%", Percent: 100, IsPercent: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseWaves(tt.in)
			if err != nil {
				t.Fatalf("ParseWaves: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseWaves = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseWavesNamesTheBadItem(t *testing.T) {
	tests := []struct {
		in, wantErr string
	}{
		{"", "empty list"},
		{"1%,,100%", "item 2 is empty"},
		{"1%,5%,5%,100%", `item 3 ("5%"): waves must strictly increase, but it follows 5%`},
		{"10%,5%,100%", `item 2 ("5%"): waves must strictly increase`},
		{"10,2,100%", `item 2 ("2"): waves must strictly increase, but it follows 10 nodes`},
		{"1%,5%,25%", `the last item is "25%"; the list must end with 100%`},
		{"1%,200", `the last item is "200"`},
		{"0%,100%", `item 1 ("0%"): a percentage must be above 0%`},
		{"1%,150%", `item 2 ("150%"): a percentage must be above 0% and at most 100%`},
		{"abc,100%", `item 1 ("abc"): not a node count or a percentage`},
		{"x%,100%", `item 1 ("x%"): not a percentage`},
		{"NaN%,100%", `item 1 ("NaN%"): not a percentage`},
		{"1.5,100%", `item 1 ("1.5"): not a node count`},
		{"0,100%", `item 1 ("0"): a node count must be at least 1`},
		{"-3,100%", `item 1 ("-3"): a node count must be at least 1`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseWaves(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if got != nil {
				t.Fatalf("got waves %+v alongside the error", got)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		waves    string
		eligible int
		want     []Step
	}{
		{"1%,5%,25%,100%", 200, []Step{{"1%", 2}, {"5%", 10}, {"25%", 50}, {"100%", 200}}},
		{"1%,5%,25%,100%", 20, []Step{{"1%+5%", 1}, {"25%", 5}, {"100%", 20}}},
		{"10%,100%", 200, []Step{{"10%", 20}, {"100%", 200}}},
		{"1%,100%", 1, []Step{{"1%+100%", 1}}},
		{"2,10,50,100%", 200, []Step{{"2", 2}, {"10", 10}, {"50", 50}, {"100%", 200}}},
		{"2,10,50,100%", 20, []Step{{"2", 2}, {"10", 10}, {"50+100%", 20}}},
		{"5,50%,100%", 200, []Step{{"5", 5}, {"50%", 100}, {"100%", 200}}},
		{"33.3%,100%", 7, []Step{{"33.3%", 3}, {"100%", 7}}},
	}
	for _, tt := range tests {
		t.Run(tt.waves, func(t *testing.T) {
			waves, err := ParseWaves(tt.waves)
			if err != nil {
				t.Fatalf("ParseWaves: %v", err)
			}
			got, err := Resolve(waves, tt.eligible)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Resolve(%q, %d) = %v, want %v", tt.waves, tt.eligible, got, tt.want)
			}
		})
	}
}

func TestResolveRejectsWavesThatShrinkForThisFleet(t *testing.T) {
	waves, err := ParseWaves("50,10%,100%")
	if err != nil {
		t.Fatalf("ParseWaves: %v", err)
	}
	_, err = Resolve(waves, 200)
	want := `waves: "10%" is 20 of 200 eligible nodes, fewer than the 50 of the wave before it ("50")`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
	if _, err := Resolve(waves, 0); err == nil || !strings.Contains(err.Error(), "no eligible nodes") {
		t.Fatalf("zero eligible nodes: error = %v", err)
	}
}
