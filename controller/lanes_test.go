package controller

import (
	"reflect"
	"testing"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

func TestTheLaneOfADaemonSetDeletedMidRolloutIsAnOrphan(t *testing.T) {
	now := time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)
	lane := func(name, level, owner string, age time.Duration, purpose apf.Purpose) *flowcontrolv1.FlowSchema {
		return &flowcontrolv1.FlowSchema{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(now.Add(-age)),
				Labels:      map[string]string{apf.ManagedByLabel: apf.ManagedByValue, apf.PurposeLabel: string(purpose)},
				Annotations: map[string]string{apf.OwnerAnnotation: owner}},
			Spec: flowcontrolv1.FlowSchemaSpec{PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: level}},
		}
	}
	schemas := []*flowcontrolv1.FlowSchema{
		lane("bulkhead-rollout-a.gone", "bulkhead-rollout-a.gone", "daemonset/a/gone", time.Hour, apf.PurposeRolloutLane),
		lane("bulkhead-rollout-a.observed", "workload-low", "daemonset/a/observed", time.Hour, apf.PurposeRolloutLane),
		lane("bulkhead-rollout-a.here", "bulkhead-rollout-a.here", "daemonset/a/here", time.Hour, apf.PurposeRolloutLane),
		lane("bulkhead-rollout-a.new", "bulkhead-rollout-a.new", "daemonset/a/new", time.Minute, apf.PurposeRolloutLane),
		lane("bulkhead-compartment-a.gone", "bulkhead-compartment-a.gone", "daemonset/a/gone", time.Hour, apf.PurposeCompartment),
	}
	exists := func(ns, name string) bool { return ns == "a" && name == "here" }
	want := []state.Lane{
		{FlowSchema: "bulkhead-rollout-a.gone", PriorityLevel: "bulkhead-rollout-a.gone"},
		{FlowSchema: "bulkhead-rollout-a.observed", PriorityLevel: "workload-low", Shared: true},
	}
	if got := OrphanLanes(schemas, exists, now); !reflect.DeepEqual(got, want) {
		t.Fatalf("orphans %+v\nwant %+v (a DaemonSet that exists, a lane just created before its DaemonSet, and compartments are not)", got, want)
	}
}
