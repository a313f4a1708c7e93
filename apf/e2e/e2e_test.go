// Package e2e applies apf's objects to the lab's real kube-apiserver: the API server's own
// validation is the judge of the builders' output.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/bulkhead-dev/bulkhead/apf"
	"github.com/bulkhead-dev/bulkhead/internal/labtest"
)

var lab *labtest.Lab

func TestMain(m *testing.M) {
	os.Exit(labtest.Run(m, labtest.Options{Nodes: 3, PodsPerNode: 1, Services: 1}, &lab))
}

func TestApplyIsIdempotentAndTheServerAgreesOnTheSize(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fc := lab.Client.FlowcontrolV1()
	levels, err := fc.PriorityLevelConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list levels: %v", err)
	}
	others := apf.SumShares(levels.Items, "e2e-lane")
	shares, err := apf.SharesForSeats(600, others, 60)
	if err != nil {
		t.Fatalf("SharesForSeats: %v", err)
	}
	noBorrowing := int32(0)
	own := apf.Ownership{Purpose: apf.PurposeRolloutLane, Owner: "test"}
	pl, err := apf.PriorityLevel(apf.LevelSpec{Name: "e2e-lane", Shares: shares, BorrowingLimitPercent: &noBorrowing}, own)
	if err != nil {
		t.Fatalf("PriorityLevel: %v", err)
	}
	fs, err := apf.FlowSchema(apf.SchemaSpec{Name: "e2e-lane", Level: "e2e-lane", Precedence: apf.PrecedenceRolloutLane,
		Subjects: []apf.Subject{apf.ServiceAccount("default", "e2e"), apf.User("e2e-user"), apf.Group("e2e-group")}}, own)
	if err != nil {
		t.Fatalf("FlowSchema: %v", err)
	}
	first, err := apf.ApplyPriorityLevel(ctx, fc, pl)
	if err != nil {
		t.Fatalf("ApplyPriorityLevel: %v", err)
	}
	if _, err := apf.ApplyFlowSchema(ctx, fc, fs); err != nil {
		t.Fatalf("ApplyFlowSchema: %v", err)
	}
	second, err := apf.ApplyPriorityLevel(ctx, fc, pl)
	if err != nil {
		t.Fatalf("ApplyPriorityLevel again: %v", err)
	}
	if first.ResourceVersion != second.ResourceVersion {
		t.Fatalf("applying the same level twice changed it (resourceVersion %s → %s)", first.ResourceVersion, second.ResourceVersion)
	}

	// The API server's own arithmetic, read from its metrics, must match apf's.
	want := apf.NominalSeats(600, shares, others+int64(shares))
	var seen float64
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		seen = nominalLimitSeats(t, ctx, "e2e-lane")
		return seen == float64(want), nil
	})
	if err != nil {
		t.Fatalf("the server gives e2e-lane %v nominal seats; apf computed %d (%d shares next to %d)", seen, want, shares, others)
	}
	t.Logf("%d shares next to %d give %d seats on the server, as computed", shares, others, want)

	// The schema's status says whether it found its level: the pair is coherent.
	got, err := fc.FlowSchemas().Get(ctx, "e2e-lane", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get flow schema: %v", err)
	}
	for _, c := range got.Status.Conditions {
		if c.Type == flowcontrolv1.FlowSchemaConditionDangling && c.Status == flowcontrolv1.ConditionTrue {
			t.Fatalf("flow schema is dangling: %s", c.Message)
		}
	}

	for range 2 {
		if err := apf.DeleteFlowSchema(ctx, fc, "e2e-lane"); err != nil {
			t.Fatalf("DeleteFlowSchema: %v", err)
		}
		if err := apf.DeletePriorityLevel(ctx, fc, "e2e-lane"); err != nil {
			t.Fatalf("DeletePriorityLevel: %v", err)
		}
	}
	if _, err := fc.PriorityLevelConfigurations().Get(ctx, "e2e-lane", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("level still there after delete: %v", err)
	}
}

func TestApplyRefusesToTouchSomeoneElsesObject(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fc := lab.Client.FlowcontrolV1()
	// workload-low is kube-apiserver's own level.
	pl, err := apf.PriorityLevel(apf.LevelSpec{Name: "workload-low", Shares: 1}, apf.Ownership{Purpose: apf.PurposeShed})
	if err != nil {
		t.Fatalf("PriorityLevel: %v", err)
	}
	before, err := fc.PriorityLevelConfigurations().Get(ctx, "workload-low", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get workload-low: %v", err)
	}
	if _, err := apf.ApplyPriorityLevel(ctx, fc, pl); err == nil || !strings.Contains(err.Error(), `priority level "workload-low" exists and is not managed by bulkhead`) {
		t.Fatalf("apply over workload-low: %v", err)
	}
	if err := apf.DeletePriorityLevel(ctx, fc, "workload-low"); err == nil || !strings.Contains(err.Error(), "refusing to delete it") {
		t.Fatalf("delete workload-low: %v", err)
	}
	after, err := fc.PriorityLevelConfigurations().Get(ctx, "workload-low", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get workload-low: %v", err)
	}
	if after.ResourceVersion != before.ResourceVersion {
		t.Fatalf("workload-low changed")
	}
}

// nominalLimitSeats reads apiserver_flowcontrol_nominal_limit_seats for a level from /metrics
// (0 when the level is not there yet).
func nominalLimitSeats(t *testing.T, ctx context.Context, level string) float64 {
	t.Helper()
	body, err := lab.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.NewFormat(expfmt.TypeTextPlain))
	for {
		var family dto.MetricFamily
		err := dec.Decode(&family)
		if errors.Is(err, io.EOF) {
			return 0
		}
		if err != nil {
			t.Fatalf("parse /metrics: %v", err)
		}
		if family.GetName() != "apiserver_flowcontrol_nominal_limit_seats" {
			continue
		}
		for _, m := range family.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "priority_level" && l.GetValue() == level {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
}
