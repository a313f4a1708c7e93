package cluster

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/bulkhead-dev/bulkhead/lab/pki"
)

// writeKubeconfig writes a kubeconfig for one client identity of the lab.
func writeKubeconfig(path, server string, bundle *pki.Bundle, identity string) error {
	files, ok := bundle.Clients[identity]
	if !ok {
		return fmt.Errorf("no client certificate for %q", identity)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["lab"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: bundle.CACertPEM}
	cfg.AuthInfos[identity] = &clientcmdapi.AuthInfo{ClientCertificate: files.Cert, ClientKey: files.Key}
	cfg.Contexts["lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: identity}
	cfg.CurrentContext = "lab"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// restConfig builds a client config for one lab identity.
func restConfig(server string, bundle *pki.Bundle, identity string, qps float32, burst int) *rest.Config {
	files := bundle.Clients[identity]
	return &rest.Config{
		Host:            server,
		TLSClientConfig: rest.TLSClientConfig{CAData: bundle.CACertPEM, CertFile: files.Cert, KeyFile: files.Key},
		QPS:             qps,
		Burst:           burst,
		UserAgent:       "bulkhead-lab/" + identity,
	}
}
