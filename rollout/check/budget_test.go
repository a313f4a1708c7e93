package check

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParseBudget(t *testing.T) {
	for in, want := range map[string]Budget{
		"":                           DefaultBudget,
		"cpu=20%":                    {CPU: 20, Memory: 25, Seats: 10},
		"cpu=20%,memory=30,seats=5%": {CPU: 20, Memory: 30, Seats: 5},
		" Seats = 2.5% ":             {CPU: 25, Memory: 25, Seats: 2.5},
		"10%":                        {CPU: 10, Memory: 10, Seats: 10},
	} {
		if got, err := ParseBudget(in); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseBudget(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, wantErr := range map[string]string{
		"cpu=0%":          "cpu: \"0%\" must be within (0, 100%]",
		"memory=101%":     "must be within",
		"disk=10%":        `unknown resource "disk" (resources: cpu, memory, seats)`,
		"cpu=10%,cpu=20%": "cpu is given twice",
		"cpu":             `"cpu" is not a percentage`,
		"cpu=ten":         `"ten" is not a percentage`,
		"cpu=10%,seats":   `"seats" is not resource=share`,
		"NaN%":            "is not a percentage",
	} {
		if _, err := ParseBudget(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseBudget(%q) error = %v, want %q", in, err, wantErr)
		}
	}
	if s := DefaultBudget.String(); s != "cpu=25%,memory=25%,seats=10%" {
		t.Errorf("DefaultBudget.String() = %q", s)
	}
}

func TestLimitsAreSharesOfCapacityWithinTheHeadroom(t *testing.T) {
	l := DefaultBudget.Limits(Capacity{CPU: 2, CPUFrom: "GOMAXPROCS", CPUUsed: 0.2, Memory: 4 << 30, MemoryUsed: 3 << 30, Seats: 600})
	if cpu := l[CPU]; cpu.Value != 0.5 || !cpu.Known() || cpu.String() != "0.500 cores (25% of the API servers' 2.0 cores, from GOMAXPROCS)" {
		t.Errorf("CPU %+v %q: want 25%% of 2 cores", cpu, cpu.String())
	}
	// 3 GiB of 4 are used: below the 80% ceiling only 0.2 GiB are left, less than 25% of 4.
	if mem := l[Memory]; math.Abs(mem.Value-(0.8*(4<<30)-3<<30)) > 1 || !strings.Contains(mem.String(), "less what they already use: 3.0 GiB") {
		t.Errorf("memory %+v %q: want the headroom below 80%%", mem, mem.String())
	}
	if seats := l[Seats]; seats.Value != 60 {
		t.Errorf("seats %+v: want 10%% of 600", seats)
	}
	busy := DefaultBudget.Limits(Capacity{CPU: 2, CPUUsed: 1.9})
	if cpu := busy[CPU]; cpu.Value != 0 {
		t.Errorf("a server at 95%% has no headroom below its 80%% ceiling: %+v", cpu)
	}
	blind := DefaultBudget.Limits(Capacity{Seats: 600})
	if cpu := blind[CPU]; cpu.Known() || !strings.Contains(cpu.String(), "pass --apiserver-cpus") {
		t.Errorf("an unknown CPU capacity is not a limit: %+v %q", cpu, cpu.String())
	}
}
