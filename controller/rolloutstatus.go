package controller

import (
	"context"
	"fmt"
	"reflect"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	"github.com/bulkhead-dev/bulkhead/controller/api/v1alpha1"
	"github.com/bulkhead-dev/bulkhead/controller/hold"
	"github.com/bulkhead-dev/bulkhead/rollout/check"
	"github.com/bulkhead-dev/bulkhead/rollout/report"
	"github.com/bulkhead-dev/bulkhead/rollout/state"
)

// StatusOf is what a DaemonSet's RolloutStatus shows: its rollout's state, or Held while
// admission holds it and no rollout has begun. ok is false when there is nothing to show.
// Pure.
func StatusOf(ds *appsv1.DaemonSet) (s v1alpha1.RolloutStatusStatus, ok bool, err error) {
	st, found, err := state.Decode(ds.Annotations)
	if err != nil {
		return s, false, fmt.Errorf("DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	if !found {
		if hold.Held(ds) == "" {
			return s, false, nil
		}
		return v1alpha1.RolloutStatusStatus{Phase: "Held", Mode: string(state.Guard),
			Message: "held by admission (" + hold.Held(ds) + "): waiting for the controller to start its rollout"}, true, nil
	}
	s = v1alpha1.RolloutStatusStatus{
		RolloutID: st.ID, Mode: string(state.Guard), Kind: string(st.Kind), Revision: st.Revision, Phase: string(st.Phase), Paused: st.Paused,
		Wave: fmt.Sprintf("%d/%d", st.Wave, len(st.Targets)), Nodes: fmt.Sprintf("%d/%d", st.Done, st.Eligible),
	}
	updated := metav1.NewTime(st.Updated.Truncate(time.Second))
	s.Updated = &updated
	if st.Observing() {
		s.Mode = string(state.Observe)
	}
	rec := lastRecord(st)
	switch {
	case st.WouldHalt != nil:
		s.Message = "guard would have halted it: " + st.Reason
	case st.Reason != "":
		s.Message = st.Reason
	case rec != nil:
		s.Message = rec.Headline
	}
	lead, over := -1.0, false
	for _, r := range check.Resources {
		l, known := st.Limits[r]
		if rec == nil || !known || !l.Known() {
			continue
		}
		p := rec.Resources[r].Predicted
		if p == nil {
			continue
		}
		s.Resources = append(s.Resources, v1alpha1.ResourceStatus{Resource: string(r), Unit: report.Unit(r),
			Predicted: p.Mean, PredictedLow: p.Low, PredictedHigh: p.High, Budget: l.Value, Share: l.Share})
		// The resource shown is the one the decision leads with: the first over its budget in
		// check.Resources' order (CPU, the one that runs out first), else the nearest to it.
		ratio := p.Mean / l.Value
		if l.Value > 0 && !over && (ratio > 1 || ratio > lead) {
			lead, over = ratio, ratio > 1
			s.Resource, s.Predicted = string(r), check.Amount(r, p.Mean)
			s.Budget = fmt.Sprintf("%s (%g%%)", check.Amount(r, l.Value), l.Share)
		}
	}
	return s, true, nil
}

// statuses keeps every DaemonSet's RolloutStatus in step with its state, from an informer's
// cache: a write only when what it shows changed.
type statuses struct {
	dyn    dynamic.Interface
	lister cache.GenericLister
}

// sync writes ds's RolloutStatus if it differs from what its state says, and deletes one that
// has nothing left to show.
func (w *statuses) sync(ctx context.Context, ds *appsv1.DaemonSet) error {
	want, ok, err := StatusOf(ds)
	if err != nil {
		return err
	}
	res := w.dyn.Resource(v1alpha1.RolloutStatusResource).Namespace(ds.Namespace)
	var have *v1alpha1.RolloutStatus
	if obj, err := w.lister.ByNamespace(ds.Namespace).Get(ds.Name); err == nil {
		u, isU := obj.(*unstructured.Unstructured)
		have = &v1alpha1.RolloutStatus{}
		if !isU || runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, have) != nil {
			have = &v1alpha1.RolloutStatus{ObjectMeta: metav1.ObjectMeta{ResourceVersion: u.GetResourceVersion()}}
		}
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	switch {
	case !ok && have == nil:
		return nil
	case !ok:
		if err := res.Delete(ctx, ds.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete RolloutStatus %s/%s: %w", ds.Namespace, ds.Name, err)
		}
		return nil
	case have != nil && reflect.DeepEqual(have.Status, want):
		return nil
	}
	controller := true
	obj := &v1alpha1.RolloutStatus{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "RolloutStatus"},
		ObjectMeta: metav1.ObjectMeta{Name: ds.Name, Namespace: ds.Namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "bulkhead"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID,
				Controller: &controller}}},
		Status: want,
	}
	data, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return fmt.Errorf("encode RolloutStatus %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	u := &unstructured.Unstructured{Object: data}
	if have == nil {
		_, err = res.Create(ctx, u, metav1.CreateOptions{FieldManager: hold.FieldManager})
	} else {
		u.SetResourceVersion(have.ResourceVersion)
		_, err = res.Update(ctx, u, metav1.UpdateOptions{FieldManager: hold.FieldManager})
	}
	if err != nil {
		return fmt.Errorf("write RolloutStatus %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	return nil
}
