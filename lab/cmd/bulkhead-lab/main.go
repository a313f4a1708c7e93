package main

import (
	"fmt"
	"os"

	_ "go.etcd.io/etcd/server/v3/embed"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	cm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	sched "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "sigs.k8s.io/kwok/pkg/kwok/controllers"
)

func main() {
	_ = apiserver.NewAPIServerCommand
	_ = cm.NewControllerManagerCommand
	_ = sched.NewSchedulerCommand
	fmt.Fprintln(os.Stderr, "warmup")
}
