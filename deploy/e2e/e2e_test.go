// Package e2e holds every manifest in deploy/ to the lab's real API server: each object is
// accepted as written, and each pod template passes Pod Security "restricted" or fails it for
// exactly the exceptions deploy/README.md documents.
package e2e

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/bulkhead-dev/bulkhead/internal/labtest"
	"github.com/bulkhead-dev/bulkhead/internal/manifests"
)

var lab *labtest.Lab

func TestMain(m *testing.M) {
	os.Exit(labtest.Run(m, labtest.Options{Nodes: 2, PodsPerNode: 1, Services: 1}, &lab))
}

// exception is a row of deploy/README.md's Pod Security table.
type exception struct {
	manifest, workload, level string
	checks                    []string
}

func exceptions(t *testing.T) map[string]exception {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "| manifest | workload | level | exceptions to restricted | why |")
	if !ok {
		t.Fatal("deploy/README.md has no Pod Security table")
	}
	out := map[string]exception{}
	for _, line := range strings.Split(table, "\n")[2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.ReplaceAll(strings.TrimSpace(cells[i]), "`", "")
		}
		e := exception{manifest: cells[0], workload: cells[1], level: cells[2]}
		for _, c := range strings.Split(cells[3], ",") {
			e.checks = append(e.checks, strings.TrimSpace(c))
		}
		out[e.manifest] = e
	}
	return out
}

// podSecurityNamespace creates a namespace that enforces level.
func podSecurityNamespace(t *testing.T, level string) string {
	t.Helper()
	name := "psa-" + level
	_, err := lab.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": level, "pod-security.kubernetes.io/enforce-version": "latest"}}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return name
}

// admit creates tmpl as a pod in ns with a server-side dry run and returns the API server's
// refusal, or nil.
func admit(t *testing.T, tmpl *corev1.PodTemplateSpec, ns string) error {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "deploy-check-", Namespace: ns, Labels: tmpl.Labels,
		Annotations: tmpl.Annotations}, Spec: *tmpl.Spec.DeepCopy()}
	pod.Spec.ServiceAccountName = "" // the dry run is about the pod, not its account's existence
	_, err := lab.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	return err
}

// violations names the Pod Security checks a refusal lists: `violates PodSecurity
// "restricted:latest": host namespaces (hostNetwork=true), hostPath volumes (...), ...`.
func violations(err error) []string {
	_, list, ok := strings.Cut(err.Error(), `": `)
	if !ok {
		return nil
	}
	var out []string
	depth, start := 0, 0
	for i, r := range list + "," {
		switch {
		case r == '(':
			if depth == 0 {
				out = append(out, strings.TrimSpace(list[start:i]))
			}
			depth++
		case r == ')':
			depth--
		case r == ',' && depth == 0:
			start = i + 1
		}
	}
	slices.Sort(out)
	return out
}

// withoutExceptions undoes each documented exception the way a restricted pod would do without
// it: no host network, an emptyDir for a hostPath, probes of the pod's own address, no added
// capability but NET_BIND_SERVICE, a non-root user.
func withoutExceptions(tmpl *corev1.PodTemplateSpec) *corev1.PodTemplateSpec {
	out := tmpl.DeepCopy()
	s := &out.Spec
	s.HostNetwork, s.HostPID, s.HostIPC = false, false, false
	for i := range s.Volumes {
		if s.Volumes[i].HostPath != nil {
			s.Volumes[i].VolumeSource = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
		}
	}
	nonRoot, uid := true, int64(65532)
	for _, list := range [][]corev1.Container{s.InitContainers, s.Containers} {
		for i := range list {
			for _, p := range []*corev1.Probe{list[i].LivenessProbe, list[i].ReadinessProbe, list[i].StartupProbe} {
				if p != nil && p.HTTPGet != nil {
					p.HTTPGet.Host = ""
				}
			}
			sc := list[i].SecurityContext
			if sc == nil {
				continue
			}
			if sc.Capabilities != nil {
				sc.Capabilities.Add = slices.DeleteFunc(sc.Capabilities.Add, func(c corev1.Capability) bool { return c != "NET_BIND_SERVICE" })
			}
			sc.RunAsNonRoot, sc.RunAsUser = &nonRoot, &uid
		}
	}
	return out
}

// TestEveryPodTemplatePassesRestrictedOrItsExceptionsAreDocumented checks deploy/README.md's Pod
// Security table against the API server's Pod Security admission.
func TestEveryPodTemplatePassesRestrictedOrItsExceptionsAreDocumented(t *testing.T) {
	files, err := manifests.Read("..")
	if err != nil {
		t.Fatal(err)
	}
	documented := exceptions(t)
	restricted := podSecurityNamespace(t, "restricted")
	templates := 0
	for _, f := range files {
		for _, o := range f.Objects {
			tmpl, ok := manifests.PodTemplate(o)
			if !ok {
				continue
			}
			templates++
			t.Run(f.Path, func(t *testing.T) {
				exc, listed := documented[f.Path]
				err := admit(t, tmpl, restricted)
				if !listed {
					if err != nil {
						t.Fatalf("refused by Pod Security restricted and not documented in deploy/README.md: %v", err)
					}
					return
				}
				want := slices.Sorted(slices.Values(exc.checks))
				if got := violations(err); !slices.Equal(got, want) {
					t.Fatalf("restricted refuses %v, deploy/README.md documents %v\n(%v)", got, want, err)
				}
				if err := admit(t, withoutExceptions(tmpl), restricted); err != nil {
					t.Fatalf("with the documented exceptions taken away it is still refused, so the list is incomplete: %v", err)
				}
				if err := admit(t, tmpl, podSecurityNamespace(t, exc.level)); err != nil {
					t.Fatalf("refused at its documented level %s: %v", exc.level, err)
				}
				t.Logf("%s: restricted refuses exactly %v; admitted at %s", exc.workload, want, exc.level)
			})
			delete(documented, f.Path)
		}
	}
	if templates == 0 {
		t.Fatal("no pod templates found in deploy/")
	}
	for path := range documented {
		t.Errorf("deploy/README.md documents exceptions for %s, which has no pod template", path)
	}
}

// TestEveryManifestIsAcceptedAsWritten creates every object of deploy/ with a server-side dry run
// (namespaces for real first, so the objects inside them can be checked).
func TestEveryManifestIsAcceptedAsWritten(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	files, err := manifests.Read("..")
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(lab.Config)
	if err != nil {
		t.Fatal(err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(lab.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	create := func(o runtime.Object, dryRun bool) error {
		fields, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{Object: fields}
		gvk := o.GetObjectKind().GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return err
		}
		opts := metav1.CreateOptions{}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		res := dyn.Resource(mapping.Resource)
		if u.GetNamespace() != "" {
			_, err = res.Namespace(u.GetNamespace()).Create(ctx, u, opts)
		} else {
			_, err = res.Create(ctx, u, opts)
		}
		if apierrors.IsAlreadyExists(err) {
			return nil // kube-system, default
		}
		return err
	}
	checked := 0
	for _, f := range files {
		for _, o := range f.Objects {
			if o.GetObjectKind().GroupVersionKind().Kind == "Namespace" {
				if err := create(o, false); err != nil {
					t.Fatalf("%s: namespace: %v", f.Path, err)
				}
			}
		}
	}
	for _, f := range files {
		for _, o := range f.Objects {
			if err := create(o, true); err != nil {
				t.Errorf("%s: %s refused: %v", f.Path, o.GetObjectKind().GroupVersionKind().Kind, err)
			}
			checked++
		}
	}
	t.Logf("%d objects accepted", checked)

	// The break-glass namespace enforces restricted: a privileged pod there is refused.
	privileged := &corev1.PodTemplateSpec{Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "c", Image: "x:1"}}}}
	if err := admit(t, privileged, "bulkhead"); err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Fatalf("a host-network pod in namespace bulkhead: %v; want refused by Pod Security", err)
	}
}
