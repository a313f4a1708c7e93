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
// Control. The supervisor serves a small HTTP API on the unix socket <dir>/ctl.sock, used by
// `bulkhead-lab ctl` (apiserver stop|start [--replica I], status, balancer) and by benchmarks
// (emulator statistics).
package cluster
