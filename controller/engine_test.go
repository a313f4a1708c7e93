package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/rollout"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/plan"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

func TestAPolicysSettingsBecomeTheRolloutCoresOptionsWithTheProductsDefaults(t *testing.T) {
	o, err := Options(v1alpha1.Settings{Mode: v1alpha1.Guard})
	if err != nil {
		t.Fatal(err)
	}
	if o.Waves != plan.DefaultWaves || o.Soak != rollout.DefaultSoak || o.Mode != state.Guard || len(o.Budget) != 3 || o.Budget[check.CPU] != check.DefaultBudget[check.CPU] {
		t.Fatalf("a policy that says nothing: %+v; want the product's defaults", o)
	}
	o, err = Options(v1alpha1.Settings{Mode: v1alpha1.Observe, Waves: "2,100%", Soak: 20 * time.Second, Budget: "cpu=10%"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Waves != "2,100%" || o.Soak != 20*time.Second || o.Mode != state.Observe || o.Budget[check.CPU] != 10 || o.Budget[check.Seats] != check.DefaultBudget[check.Seats] {
		t.Fatalf("a policy's settings: %+v", o)
	}
	if _, err := Options(v1alpha1.Settings{Budget: "disk=5%"}); err == nil || !strings.Contains(err.Error(), `unknown resource "disk"`) {
		t.Fatalf("an unknown resource: %v", err)
	}
}
