// Package cluster runs the lab: a real Kubernetes control plane whose nodes are fake.
//
// Model. `bulkhead-lab up` is a supervisor process. It generates certificates, runs etcd
// embedded in itself, and starts kube-apiserver, kube-controller-manager and kube-scheduler as
// child processes of its own binary (so each has its own CPU and memory accounting and the
// apiserver can be stopped and started alone). Fake kubelets (KWOK's controllers, in-process)
// keep node leases and pod status fresh, and the behaviour emulator (package behavior) performs
// the API calls that pods' annotations describe, as the pods' own service accounts.
//
// Every component authenticates with its own identity (client certificates; the controller
// manager uses per-controller service-account credentials), so RBAC and API Priority and
// Fairness classify traffic as in a production cluster.
//
// Network. With one apiserver (the default) everything listens on 127.0.0.1. Because
// EndpointSlice validation rejects loopback addresses, the apiserver runs with
// --endpoint-reconciler-type=none and the lab keeps no default/kubernetes EndpointSlice: clients
// discover the apiserver from the kubeconfig.
//
// With --apiservers N > 1 the control plane looks like production's: N kube-apiserver
// processes on the one etcd (reached over a unix socket), each with its own address, serving
// certificate, hostname (so identity lease), /metrics, APF seats and, with limits, cgroup, and
// the lab's TCP load balancer (balancer.go) on 127.0.0.1 in front of them as the kubeconfig's
// server. Each replica lives in a network namespace of its own that the lab creates
// (network.go), at an address the default/kubernetes EndpointSlice (which the lab writes) can
// list, so no listener uses the machine's own addresses. Emulated pods then get a connection each, so that their
// load spreads over the replicas as real pods' does.
//
// With --endpoint balancer (and --apiservers > 1) the replicas sit behind one address, as a
// managed control plane's (EKS, GKE, AKS, a VIP) do: the balancer also listens at .10 of the
// lab's /24, port 6443, inside a network namespace of its own that the lab creates, and the
// default/kubernetes EndpointSlice lists that address alone. The replicas' links then hang off
// the balancer's namespace, not the lab's: clients on this machine (bulkhead, tests, the
// emulator) reach the balanced address or 127.0.0.1 and never a replica; the balancer, and the
// lab's own health checks and status, dial the replicas from the balancer's namespace.
// --goaway-chance F (0 to 0.02) is passed to every replica, as managed providers do to
// rebalance long-lived HTTP/2 connections.
//
// Prometheus. With --prometheus PATH (a prometheus binary; `make prometheus` installs one) the
// supervisor also runs that Prometheus as a child process (prometheus.go), listening on a free
// port of 127.0.0.1 only, storing under <dir>/prometheus and logging to <dir>/prometheus.log. It
// scrapes every replica's /metrics directly every 5 s, over TLS with the lab's CA, as job
// "apiserver" with instance = the replica's address (as `ctl status` lists it), which is what
// bulkhead's Prometheus source expects. It authenticates with a client certificate of its own
// (user bulkhead-lab:prometheus, group system:monitoring, which Kubernetes' bootstrap RBAC lets
// get /metrics, the health endpoints and nodes' metrics, and no API object). It stops with the
// lab; `ctl status` gives its URL (prometheusURL). It needs every replica reachable from this
// machine, so it does not combine with --endpoint balancer.
//
// Control. The supervisor serves a small HTTP API on the unix socket <dir>/ctl.sock, used by
// `bulkhead-lab ctl` (apiserver stop|start [--replica I], status, balancer) and by benchmarks
// (emulator statistics).
package cluster
