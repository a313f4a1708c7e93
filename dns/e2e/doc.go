// Package e2e tests bulkhead dns against the lab's real kube-apiserver with real DNS clients:
// answers match the API's Services and EndpointSlices, changes show within a second, and a
// restart while the API server is down answers every name that existed before from the snapshot.
package e2e
