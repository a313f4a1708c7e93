package cluster

import (
	"testing"
	"time"
)

func TestRestartDelayBacksOffLikeTheKubelet(t *testing.T) {
	for _, tc := range []struct {
		crashLoop int
		want      time.Duration
	}{
		{1, 10 * time.Second},
		{2, 20 * time.Second},
		{3, 40 * time.Second},
		{5, 160 * time.Second},
		{6, 5 * time.Minute},
		{50, 5 * time.Minute},
	} {
		if got := restartDelay(tc.crashLoop); got != tc.want {
			t.Errorf("restartDelay(%d) = %s, want %s", tc.crashLoop, got, tc.want)
		}
	}
}
