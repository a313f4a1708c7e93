package watch

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/bulkhead-dev/bulkhead/dns/internal/fixture"
)

func TestTrimKeepsOnlyWhatDNSNeeds(t *testing.T) {
	svc := fixture.ClusterIPService("lab", "web", []string{"10.96.0.1"}, fixture.Port{Name: "http", Port: 80})
	svc.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}"}
	svc.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	svc.Spec.Selector = map[string]string{"app": "web"}
	svc.Spec.Ports[0].TargetPort = intstr.FromInt32(8080)
	svc.Spec.PublishNotReadyAddresses = true
	got, err := Trim(svc)
	if err != nil {
		t.Fatal(err)
	}
	s := got.(*corev1.Service)
	if s.Annotations != nil || s.ManagedFields != nil || s.Spec.Selector != nil || s.Spec.Ports[0].TargetPort.IntVal != 0 {
		t.Fatalf("kept fields DNS does not use: %+v", s)
	}
	if s.Name != "web" || s.Spec.ClusterIP != "10.96.0.1" || s.Spec.Ports[0].Name != "http" || !s.Spec.PublishNotReadyAddresses {
		t.Fatalf("lost fields DNS uses: %+v", s)
	}

	slice := fixture.Slice("lab", "web", "web-x", discoveryv1.AddressTypeIPv4, []fixture.Port{{Name: "http", Port: 80}},
		fixture.Endpoint{IP: "10.1.0.1", Hostname: "web-0"})
	slice.Labels["app"] = "web"
	node := "node-1"
	slice.Endpoints[0].NodeName = &node
	got, err = Trim(slice)
	if err != nil {
		t.Fatal(err)
	}
	e := got.(*discoveryv1.EndpointSlice)
	if len(e.Labels) != 1 || e.Endpoints[0].NodeName != nil {
		t.Fatalf("kept fields DNS does not use: %+v", e)
	}
	if e.Labels[discoveryv1.LabelServiceName] != "web" || *e.Endpoints[0].Hostname != "web-0" || *e.Endpoints[0].Conditions.Ready != true || *e.Ports[0].Name != "http" {
		t.Fatalf("lost fields DNS uses: %+v", e)
	}
}

func TestViewIsSortedWhateverTheCacheOrder(t *testing.T) {
	a := fixture.ClusterIPService("b", "x", []string{"10.96.0.1"})
	b := fixture.ClusterIPService("a", "z", []string{"10.96.0.2"})
	c := fixture.ClusterIPService("a", "y", []string{"10.96.0.3"})
	st := View(time.Unix(5, 0), []*corev1.Service{a, b, c}, nil)
	if st.Services[0] != c || st.Services[1] != b || st.Services[2] != a || !st.SyncedAt.Equal(time.Unix(5, 0)) {
		t.Fatalf("order %s/%s %s/%s %s/%s", st.Services[0].Namespace, st.Services[0].Name,
			st.Services[1].Namespace, st.Services[1].Name, st.Services[2].Namespace, st.Services[2].Name)
	}
}

func TestCooldownKeepsRebuildsToAThirdOfACore(t *testing.T) {
	for _, tc := range []struct{ took, want time.Duration }{
		{time.Millisecond, 2 * time.Millisecond},
		{850 * time.Millisecond, 1700 * time.Millisecond},
		{time.Minute, 10 * time.Second},
	} {
		if got := Cooldown(tc.took); got != tc.want {
			t.Errorf("Cooldown(%v) = %v, want %v", tc.took, got, tc.want)
		}
	}
}
