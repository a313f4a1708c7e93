package cluster

import (
	"context"
	"fmt"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodeheartbeat "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
	"sigs.k8s.io/kwok/pkg/apis/internalversion"
	"sigs.k8s.io/kwok/pkg/client/clientset/versioned"
	kwokconfig "sigs.k8s.io/kwok/pkg/config"
	"sigs.k8s.io/kwok/pkg/kwok/controllers"
	kwoklog "sigs.k8s.io/kwok/pkg/log"
	kwokclient "sigs.k8s.io/kwok/pkg/utils/client"
)

// startKubelets runs KWOK's controllers in this process as the fake kubelets of every node:
// node status and leases, and pod status with an IP from the node's pod CIDR.
func startKubelets(ctx context.Context, kubeconfigPath, logPath string) error {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("kubelets log: %w", err)
	}
	ctx = kwoklog.NewContext(ctx, kwoklog.NewLogger(logFile, kwoklog.LevelWarn))

	clients, err := kwokclient.NewClientset("", kubeconfigPath)
	if err != nil {
		return fmt.Errorf("kubelets clients: %w", err)
	}
	restConfig, err := clients.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("kubelets config: %w", err)
	}
	dynamicClient, err := clients.ToDynamicClient()
	if err != nil {
		return fmt.Errorf("kubelets dynamic client: %w", err)
	}
	restMapper, err := clients.ToRESTMapper()
	if err != nil {
		return fmt.Errorf("kubelets REST mapper: %w", err)
	}
	restClient, err := rest.RESTClientFor(restConfig)
	if err != nil {
		return fmt.Errorf("kubelets REST client: %w", err)
	}
	typedClient, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("kubelets typed client: %w", err)
	}
	kwokClient, err := versioned.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("kubelets kwok client: %w", err)
	}
	stages, err := defaultStages()
	if err != nil {
		return err
	}
	id, err := controllers.Identity()
	if err != nil {
		return fmt.Errorf("kubelets identity: %w", err)
	}
	ctr, err := controllers.NewController(controllers.Config{
		Clock:                      clock.RealClock{},
		DynamicClient:              dynamicClient,
		RESTClient:                 restClient,
		RESTMapper:                 restMapper,
		ImpersonatingDynamicClient: clients.ToImpersonatingDynamicClient(),
		ImpersonatingTypedClient:   clients.ToImpersonatingTypedClient(),
		TypedClient:                typedClient,
		TypedKwokClient:            kwokClient,
		ManageAllNodes:             true,
		CIDR:                       "10.0.0.1/24",
		NodeIP:                     "172.16.255.254",
		LocalStages:                stages,
		PodPlayStageParallelism:    16,
		NodePlayStageParallelism:   8,
		NodeLeaseDurationSeconds:   40,
		NodeLeaseParallelism:       8,
		PodsOnNodeSyncParallelism:  8,
		ID:                         id,
	})
	if err != nil {
		return fmt.Errorf("kubelets controller: %w", err)
	}
	if err := ctr.Start(ctx); err != nil {
		return fmt.Errorf("start kubelets: %w", err)
	}
	return nil
}

// defaultStages are KWOK's own "fast" lifecycle: nodes become Ready at once and heartbeat with
// leases; pods become Running and Ready at once, complete and delete like real ones.
func defaultStages() (map[internalversion.StageResourceRef][]*internalversion.Stage, error) {
	raws := []string{
		nodefast.DefaultNodeInit,
		nodeheartbeat.DefaultNodeHeartbeatWithLease,
		podfast.DefaultPodReady,
		podfast.DefaultPodComplete,
		podfast.DefaultPodDelete,
	}
	stages := map[internalversion.StageResourceRef][]*internalversion.Stage{}
	for _, raw := range raws {
		stage, err := kwokconfig.UnmarshalWithType[*internalversion.Stage](raw)
		if err != nil {
			return nil, fmt.Errorf("KWOK stage: %w", err)
		}
		stages[stage.Spec.ResourceRef] = append(stages[stage.Spec.ResourceRef], stage)
	}
	return stages, nil
}
