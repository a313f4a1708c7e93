package cluster

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/bulkhead-dev/bulkhead/lab/behavior"
)

func TestBusyClientsBehavioursParse(t *testing.T) {
	for _, c := range busyClients {
		if _, err := behavior.Parse(c.behavior); err != nil {
			t.Errorf("busy client %s: %v", c.name, err)
		}
	}
}

func TestEveryBusyClientHasAnIdentityWithRights(t *testing.T) {
	accounts := map[string]bool{}
	bound := map[string]bool{}
	for _, obj := range busyObjects() {
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			accounts[o.Name] = true
		case *rbacv1.RoleBinding:
			for _, s := range o.Subjects {
				bound[s.Name] = true
			}
		case *rbacv1.ClusterRoleBinding:
			for _, s := range o.Subjects {
				bound[s.Name] = true
			}
		}
	}
	for _, c := range busyClients {
		if !accounts[c.name] || !bound[c.name] {
			t.Errorf("busy client %s: service account %t, bound to a role %t; want both", c.name, accounts[c.name], bound[c.name])
		}
	}
}
