package breakglass

import (
	"context"
	"fmt"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	rbacclient "k8s.io/client-go/kubernetes/typed/rbac/v1"

	"github.com/bulkhead-dev/bulkhead/apf"
)

var (
	createOptions = metav1.CreateOptions{FieldManager: apf.FieldManager}
	updateOptions = metav1.UpdateOptions{FieldManager: apf.FieldManager}
)

// kindOps is the I/O of one kind plus its pure comparison and merge.
type kindOps[T metav1.Object] struct {
	kind   string
	get    func(ctx context.Context, name string) (T, error)
	create func(ctx context.Context, obj T) (T, error)
	update func(ctx context.Context, obj T) (T, error)
	same   func(existing, desired T) bool
	merge  func(existing, desired T) T
	// check refuses an update that cannot be done in place.
	check func(existing, desired T) error
}

// ensure makes the cluster hold desired: create it when absent, update bulkhead's fields when
// they differ, and leave it untouched (no write at all) when they do not.
func ensure[T metav1.Object](ctx context.Context, ops kindOps[T], desired T) (Change, error) {
	change := Change{Kind: ops.kind, Name: qualifiedName(desired)}
	existing, err := ops.get(ctx, desired.GetName())
	var current metav1.Object
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return change, fmt.Errorf("read %s %s: %w", ops.kind, change.Name, err)
	default:
		current = existing
	}
	same := current != nil && ops.same(existing, desired)
	action, err := decide(ops.kind, current, desired, same)
	if err != nil {
		return change, err
	}
	change.Action = action
	switch action {
	case Created:
		if _, err := ops.create(ctx, desired); err != nil {
			return change, fmt.Errorf("create %s %s: %w", ops.kind, change.Name, err)
		}
	case Updated:
		if ops.check != nil {
			if err := ops.check(existing, desired); err != nil {
				return change, err
			}
		}
		if _, err := ops.update(ctx, ops.merge(existing, desired)); err != nil {
			return change, fmt.Errorf("update %s %s: %w", ops.kind, change.Name, err)
		}
	}
	return change, nil
}

// Install makes the cluster hold m. Running it again with the same options writes nothing and
// reports every object Unchanged. It stops at the first error, reporting what it did so far.
func Install(ctx context.Context, c kubernetes.Interface, m *Manifest) ([]Change, error) {
	core, rbac, fc := c.CoreV1(), c.RbacV1(), c.FlowcontrolV1()
	create, update := createOptions, updateOptions
	var changes []Change
	step := func(ch Change, err error) error {
		if err == nil {
			changes = append(changes, ch)
		}
		return err
	}
	steps := []func() error{
		func() error {
			return step(ensure(ctx, kindOps[*corev1.Namespace]{kind: "Namespace",
				get: func(ctx context.Context, n string) (*corev1.Namespace, error) {
					return core.Namespaces().Get(ctx, n, metav1.GetOptions{})
				},
				create: func(ctx context.Context, o *corev1.Namespace) (*corev1.Namespace, error) {
					return core.Namespaces().Create(ctx, o, create)
				},
				update: func(ctx context.Context, o *corev1.Namespace) (*corev1.Namespace, error) {
					return core.Namespaces().Update(ctx, o, update)
				},
				same:  func(_, _ *corev1.Namespace) bool { return true },
				merge: mergeNamespace,
			}, m.Namespace))
		},
		func() error {
			sas := core.ServiceAccounts(Namespace)
			return step(ensure(ctx, kindOps[*corev1.ServiceAccount]{kind: "ServiceAccount",
				get: func(ctx context.Context, n string) (*corev1.ServiceAccount, error) {
					return sas.Get(ctx, n, metav1.GetOptions{})
				},
				create: func(ctx context.Context, o *corev1.ServiceAccount) (*corev1.ServiceAccount, error) {
					return sas.Create(ctx, o, create)
				},
				update: func(ctx context.Context, o *corev1.ServiceAccount) (*corev1.ServiceAccount, error) {
					return sas.Update(ctx, o, update)
				},
				same: sameServiceAccount, merge: mergeServiceAccount,
			}, m.ServiceAccount))
		},
		func() error { return step(ensurePolicy(ctx, c, m.Policy)) },
		func() error { return step(ensurePolicyBinding(ctx, c, m.PolicyBinding)) },
		func() error { return step(ensurePolicy(ctx, c, m.TokenPolicy)) },
		func() error { return step(ensurePolicyBinding(ctx, c, m.TokenPolicyBinding)) },
		func() error {
			crs := rbac.ClusterRoles()
			return step(ensure(ctx, kindOps[*rbacv1.ClusterRole]{kind: "ClusterRole",
				get: func(ctx context.Context, n string) (*rbacv1.ClusterRole, error) {
					return crs.Get(ctx, n, metav1.GetOptions{})
				},
				create: func(ctx context.Context, o *rbacv1.ClusterRole) (*rbacv1.ClusterRole, error) {
					return crs.Create(ctx, o, create)
				},
				update: func(ctx context.Context, o *rbacv1.ClusterRole) (*rbacv1.ClusterRole, error) {
					return crs.Update(ctx, o, update)
				},
				same: sameClusterRole, merge: mergeClusterRole,
			}, m.ClusterRole))
		},
		func() error {
			crbs := rbac.ClusterRoleBindings()
			return step(ensure(ctx, kindOps[*rbacv1.ClusterRoleBinding]{kind: "ClusterRoleBinding",
				get: func(ctx context.Context, n string) (*rbacv1.ClusterRoleBinding, error) {
					return crbs.Get(ctx, n, metav1.GetOptions{})
				},
				create: func(ctx context.Context, o *rbacv1.ClusterRoleBinding) (*rbacv1.ClusterRoleBinding, error) {
					return crbs.Create(ctx, o, create)
				},
				update: func(ctx context.Context, o *rbacv1.ClusterRoleBinding) (*rbacv1.ClusterRoleBinding, error) {
					return crbs.Update(ctx, o, update)
				},
				same: sameClusterRoleBinding, merge: mergeClusterRoleBinding,
				check: func(e, d *rbacv1.ClusterRoleBinding) error {
					return bindingConflict("ClusterRoleBinding", d.Name, e.RoleRef, d.RoleRef)
				},
			}, m.ClusterRoleBinding))
		},
		func() error { return step(ensureRole(ctx, rbac, m.DiscoveryRole)) },
		func() error { return step(ensureRoleBinding(ctx, rbac, m.DiscoveryBinding)) },
		func() error { return step(ensureRole(ctx, rbac, m.TokenRole)) },
		func() error { return step(ensureRoleBinding(ctx, rbac, m.TokenBinding)) },
		// The lane's APF objects go through apf, the one writer of FlowSchemas and levels
		// (server-side apply); an apply that changes nothing writes nothing.
		func() error {
			return step(ensureAPF(ctx, "PriorityLevelConfiguration", m.Level, func(ctx context.Context) (metav1.Object, error) {
				return fc.PriorityLevelConfigurations().Get(ctx, m.Level.Name, metav1.GetOptions{})
			}, func(ctx context.Context) (metav1.Object, error) { return apf.ApplyPriorityLevel(ctx, fc, m.Level) }))
		},
		func() error {
			return step(ensureAPF(ctx, "FlowSchema", m.Schema, func(ctx context.Context) (metav1.Object, error) {
				return fc.FlowSchemas().Get(ctx, m.Schema.Name, metav1.GetOptions{})
			}, func(ctx context.Context) (metav1.Object, error) { return apf.ApplyFlowSchema(ctx, fc, m.Schema) }))
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return changes, err
		}
	}
	return changes, nil
}

func ensureRole(ctx context.Context, rbac rbacclient.RbacV1Interface, desired *rbacv1.Role) (Change, error) {
	roles := rbac.Roles(desired.Namespace)
	return ensure(ctx, kindOps[*rbacv1.Role]{kind: "Role",
		get: func(ctx context.Context, n string) (*rbacv1.Role, error) {
			return roles.Get(ctx, n, metav1.GetOptions{})
		},
		create: func(ctx context.Context, o *rbacv1.Role) (*rbacv1.Role, error) {
			return roles.Create(ctx, o, createOptions)
		},
		update: func(ctx context.Context, o *rbacv1.Role) (*rbacv1.Role, error) {
			return roles.Update(ctx, o, updateOptions)
		},
		same: sameRole, merge: mergeRole,
	}, desired)
}

func ensureRoleBinding(ctx context.Context, rbac rbacclient.RbacV1Interface, desired *rbacv1.RoleBinding) (Change, error) {
	bindings := rbac.RoleBindings(desired.Namespace)
	return ensure(ctx, kindOps[*rbacv1.RoleBinding]{kind: "RoleBinding",
		get: func(ctx context.Context, n string) (*rbacv1.RoleBinding, error) {
			return bindings.Get(ctx, n, metav1.GetOptions{})
		},
		create: func(ctx context.Context, o *rbacv1.RoleBinding) (*rbacv1.RoleBinding, error) {
			return bindings.Create(ctx, o, createOptions)
		},
		update: func(ctx context.Context, o *rbacv1.RoleBinding) (*rbacv1.RoleBinding, error) {
			return bindings.Update(ctx, o, updateOptions)
		},
		same: sameRoleBinding, merge: mergeRoleBinding,
		check: func(e, d *rbacv1.RoleBinding) error {
			return bindingConflict("RoleBinding", d.Namespace+"/"+d.Name, e.RoleRef, d.RoleRef)
		},
	}, desired)
}

// ensureAPF applies a lane object through apf and reports what the apply did: created (it was
// absent), updated (its resourceVersion moved) or unchanged. Like the other kinds, it refuses
// an object bulkhead does not own or one being deleted.
func ensureAPF(ctx context.Context, kind string, desired metav1.Object,
	get func(context.Context) (metav1.Object, error), apply func(context.Context) (metav1.Object, error)) (Change, error) {
	change := Change{Kind: kind, Name: desired.GetName()}
	existing, err := get(ctx)
	switch {
	case apierrors.IsNotFound(err):
		existing = nil
	case err != nil:
		return change, fmt.Errorf("read %s %s: %w", kind, change.Name, err)
	default:
		if _, err := decide(kind, existing, desired, true); err != nil {
			return change, err
		}
	}
	applied, err := apply(ctx)
	switch {
	case err != nil:
		return change, err
	case existing == nil:
		change.Action = Created
	case applied.GetResourceVersion() != existing.GetResourceVersion():
		change.Action = Updated
	default:
		change.Action = Unchanged
	}
	return change, nil
}

func ensurePolicy(ctx context.Context, c kubernetes.Interface, desired *admissionv1.ValidatingAdmissionPolicy) (Change, error) {
	policies := c.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	return ensure(ctx, kindOps[*admissionv1.ValidatingAdmissionPolicy]{kind: "ValidatingAdmissionPolicy",
		get: func(ctx context.Context, n string) (*admissionv1.ValidatingAdmissionPolicy, error) {
			return policies.Get(ctx, n, metav1.GetOptions{})
		},
		create: func(ctx context.Context, o *admissionv1.ValidatingAdmissionPolicy) (*admissionv1.ValidatingAdmissionPolicy, error) {
			return policies.Create(ctx, o, createOptions)
		},
		update: func(ctx context.Context, o *admissionv1.ValidatingAdmissionPolicy) (*admissionv1.ValidatingAdmissionPolicy, error) {
			return policies.Update(ctx, o, updateOptions)
		},
		same: samePolicy, merge: mergePolicy,
	}, desired)
}

func ensurePolicyBinding(ctx context.Context, c kubernetes.Interface, desired *admissionv1.ValidatingAdmissionPolicyBinding) (Change, error) {
	bindings := c.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	return ensure(ctx, kindOps[*admissionv1.ValidatingAdmissionPolicyBinding]{kind: "ValidatingAdmissionPolicyBinding",
		get: func(ctx context.Context, n string) (*admissionv1.ValidatingAdmissionPolicyBinding, error) {
			return bindings.Get(ctx, n, metav1.GetOptions{})
		},
		create: func(ctx context.Context, o *admissionv1.ValidatingAdmissionPolicyBinding) (*admissionv1.ValidatingAdmissionPolicyBinding, error) {
			return bindings.Create(ctx, o, createOptions)
		},
		update: func(ctx context.Context, o *admissionv1.ValidatingAdmissionPolicyBinding) (*admissionv1.ValidatingAdmissionPolicyBinding, error) {
			return bindings.Update(ctx, o, updateOptions)
		},
		same: samePolicyBinding, merge: mergePolicyBinding,
	}, desired)
}

// Uninstall deletes every object labelled as bulkhead's break-glass or shed object: the lane,
// the RBAC, the namespace (with the service account and its Role), and every shed. Rollout
// lanes are left alone and reported in kept: deleting one would release a rollout's agents from
// their budget mid-rollout. It waits up to wait for the namespace to be gone, so that install
// can run again at once.
func Uninstall(ctx context.Context, c kubernetes.Interface, waitFor time.Duration) (removed []Change, kept []string, err error) {
	fc, rbac := c.FlowcontrolV1(), c.RbacV1()
	var deletes []func() ([]Change, error)
	for _, p := range []apf.Purpose{apf.PurposeShed, apf.PurposeBreakGlass} {
		sel := metav1.ListOptions{LabelSelector: apf.ManagedSelector(p)}
		deletes = append(deletes,
			func() ([]Change, error) {
				list, err := fc.FlowSchemas().List(ctx, sel)
				if err != nil {
					return nil, fmt.Errorf("list bulkhead flow schemas: %w", err)
				}
				var out []Change
				for _, o := range list.Items {
					if err := apf.DeleteFlowSchema(ctx, fc, o.Name); err != nil {
						return out, err
					}
					out = append(out, Change{Kind: "FlowSchema", Name: o.Name, Action: Deleted})
				}
				return out, nil
			},
			func() ([]Change, error) {
				list, err := fc.PriorityLevelConfigurations().List(ctx, sel)
				if err != nil {
					return nil, fmt.Errorf("list bulkhead priority levels: %w", err)
				}
				var out []Change
				for _, o := range list.Items {
					if err := apf.DeletePriorityLevel(ctx, fc, o.Name); err != nil {
						return out, err
					}
					out = append(out, Change{Kind: "PriorityLevelConfiguration", Name: o.Name, Action: Deleted})
				}
				return out, nil
			})
	}
	sel := metav1.ListOptions{LabelSelector: apf.ManagedSelector(apf.PurposeBreakGlass)}
	deletes = append(deletes,
		func() ([]Change, error) {
			return deleteListed(ctx, "ClusterRoleBinding", "", sel, func(ctx context.Context, o metav1.ListOptions) ([]metav1.Object, error) {
				l, err := rbac.ClusterRoleBindings().List(ctx, o)
				return items(l, err, func(l *rbacv1.ClusterRoleBindingList) []rbacv1.ClusterRoleBinding { return l.Items })
			}, rbac.ClusterRoleBindings().Delete)
		},
		func() ([]Change, error) {
			return deleteListed(ctx, "ClusterRole", "", sel, func(ctx context.Context, o metav1.ListOptions) ([]metav1.Object, error) {
				l, err := rbac.ClusterRoles().List(ctx, o)
				return items(l, err, func(l *rbacv1.ClusterRoleList) []rbacv1.ClusterRole { return l.Items })
			}, rbac.ClusterRoles().Delete)
		},
		// The rails go after the rights they narrow.
		func() ([]Change, error) {
			bindings := c.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
			return deleteListed(ctx, "ValidatingAdmissionPolicyBinding", "", sel, func(ctx context.Context, o metav1.ListOptions) ([]metav1.Object, error) {
				l, err := bindings.List(ctx, o)
				return items(l, err, func(l *admissionv1.ValidatingAdmissionPolicyBindingList) []admissionv1.ValidatingAdmissionPolicyBinding {
					return l.Items
				})
			}, bindings.Delete)
		},
		func() ([]Change, error) {
			policies := c.AdmissionregistrationV1().ValidatingAdmissionPolicies()
			return deleteListed(ctx, "ValidatingAdmissionPolicy", "", sel, func(ctx context.Context, o metav1.ListOptions) ([]metav1.Object, error) {
				l, err := policies.List(ctx, o)
				return items(l, err, func(l *admissionv1.ValidatingAdmissionPolicyList) []admissionv1.ValidatingAdmissionPolicy {
					return l.Items
				})
			}, policies.Delete)
		},
		// Only DiscoveryNamespace needs a look of its own: what install put in Namespace goes
		// with the namespace.
		func() ([]Change, error) {
			return deleteListed(ctx, "RoleBinding", DiscoveryNamespace, sel, func(ctx context.Context, o metav1.ListOptions) ([]metav1.Object, error) {
				l, err := rbac.RoleBindings(DiscoveryNamespace).List(ctx, o)
				return items(l, err, func(l *rbacv1.RoleBindingList) []rbacv1.RoleBinding { return l.Items })
			}, rbac.RoleBindings(DiscoveryNamespace).Delete)
		},
		func() ([]Change, error) {
			return deleteListed(ctx, "Role", DiscoveryNamespace, sel, func(ctx context.Context, o metav1.ListOptions) ([]metav1.Object, error) {
				l, err := rbac.Roles(DiscoveryNamespace).List(ctx, o)
				return items(l, err, func(l *rbacv1.RoleList) []rbacv1.Role { return l.Items })
			}, rbac.Roles(DiscoveryNamespace).Delete)
		},
		func() ([]Change, error) { return deleteNamespace(ctx, c.CoreV1().Namespaces(), waitFor) },
	)
	for _, d := range deletes {
		done, err := d()
		removed = append(removed, done...)
		if err != nil {
			return removed, nil, err
		}
	}
	lanes, err := fc.FlowSchemas().List(ctx, metav1.ListOptions{LabelSelector: apf.ManagedSelector(apf.PurposeRolloutLane)})
	if err != nil {
		return removed, nil, fmt.Errorf("list rollout lanes: %w", err)
	}
	for _, l := range lanes.Items {
		kept = append(kept, l.Name)
	}
	return removed, kept, nil
}

func items[L any, T any](list L, err error, get func(L) []T) ([]metav1.Object, error) {
	if err != nil {
		return nil, err
	}
	its := get(list)
	out := make([]metav1.Object, 0, len(its))
	for i := range its {
		if o, ok := any(&its[i]).(metav1.Object); ok {
			out = append(out, o)
		}
	}
	return out, nil
}

// deleteListed deletes the objects list returns, each with a UID precondition so that an object
// recreated meanwhile by someone else survives.
func deleteListed(ctx context.Context, kind, namespace string, sel metav1.ListOptions,
	list func(context.Context, metav1.ListOptions) ([]metav1.Object, error),
	del func(context.Context, string, metav1.DeleteOptions) error) ([]Change, error) {
	objs, err := list(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list bulkhead %ss: %w", kind, err)
	}
	var out []Change
	for _, o := range objs {
		uid := o.GetUID()
		err := del(ctx, o.GetName(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			return out, fmt.Errorf("delete %s %s: %w", kind, qualifiedName(o), err)
		}
		out = append(out, Change{Kind: kind, Name: qualifiedName(o), Action: Deleted})
	}
	return out, nil
}

func deleteNamespace(ctx context.Context, namespaces corev1client.NamespaceInterface, waitFor time.Duration) ([]Change, error) {
	ns, err := namespaces.Get(ctx, Namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read namespace %s: %w", Namespace, err)
	case !apf.IsManaged(ns):
		return nil, fmt.Errorf("namespace %s is not managed by bulkhead; refusing to delete it", Namespace)
	}
	uid := ns.UID
	if err := namespaces.Delete(ctx, Namespace, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("delete namespace %s: %w", Namespace, err)
	}
	change := []Change{{Kind: "Namespace", Name: Namespace, Action: Deleted}}
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, waitFor, true, func(ctx context.Context) (bool, error) {
		_, err := namespaces.Get(ctx, Namespace, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return change, fmt.Errorf("namespace %s still terminating after %s (its finalizers run in kube-controller-manager): %w", Namespace, waitFor, err)
	}
	return change, nil
}
