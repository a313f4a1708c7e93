// Package e2e tests bulkhead dns against the lab's real kube-apiserver with real DNS clients:
// answers match the API's Services and EndpointSlices, changes show in answers, and a restart
// while the API server is down answers every name that existed before from the snapshot, from the
// first packet, where a restarted CoreDNS answers none.
package e2e
