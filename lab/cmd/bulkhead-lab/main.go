// Command bulkhead-lab runs a real Kubernetes control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler) with fake nodes and emulated agent traffic, for
// testing bulkhead and replaying the December 2024 incident.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	// The supervisor re-executes this binary for each control-plane component, so that each
	// runs in its own process with its own flags, signals and resource accounting.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "kube-apiserver":
			os.Exit(runComponent(apiserver.NewAPIServerCommand()))
		case "kube-controller-manager":
			os.Exit(runComponent(controllermanager.NewControllerManagerCommand()))
		case "kube-scheduler":
			os.Exit(runComponent(scheduler.NewSchedulerCommand()))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bulkhead-lab:", err)
		os.Exit(1)
	}
}

func runComponent(cmd *cobra.Command) int {
	cmd.SetArgs(os.Args[2:])
	return cli.Run(cmd)
}
