package cluster

import (
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// startEtcd runs etcd in this process. It keeps running while the apiserver is stopped and
// started, which is what makes `ctl apiserver stop|start` keep every object. With a socket path
// it also serves clients on that unix socket and returns its URL: replicas inside the lab's
// network namespace cannot reach this process's 127.0.0.1, and a unix socket is no network.
func startEtcd(dir, socket string) (*embed.Etcd, string, error) {
	clientPort, err := reservePort(0)
	if err != nil {
		return nil, "", err
	}
	peerPort, err := reservePort(0)
	if err != nil {
		return nil, "", err
	}
	clientURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", clientPort)}
	peerURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", peerPort)}

	cfg := embed.NewConfig()
	cfg.Name = "lab"
	cfg.Dir = filepath.Join(dir, "etcd")
	cfg.ListenClientUrls = []url.URL{clientURL}
	serverURL := clientURL
	if socket != "" {
		// Unix socket paths are limited to 107 bytes.
		if len(socket) > 107 {
			return nil, "", fmt.Errorf("etcd socket %s: path longer than 107 bytes; use a shorter --dir", socket)
		}
		serverURL = url.URL{Scheme: "unix", Path: socket}
		cfg.ListenClientUrls = append(cfg.ListenClientUrls, serverURL)
	}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	// The lab's data is disposable; skipping fsync keeps a 2-core machine's disk out of the
	// measurements, which are about the apiserver.
	cfg.UnsafeNoFsync = true
	cfg.QuotaBackendBytes = 8 << 30
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "5m"

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("start etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, "", fmt.Errorf("etcd failed while starting: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, "", fmt.Errorf("etcd not ready after 60s")
	}
	return e, serverURL.String(), nil
}
