// Package behavior emulates the API traffic of agents that the lab's fake nodes cannot run.
//
// A pod annotated with lab.bulkhead.dev/behavior carries a YAML list of actions (list, watch,
// get, create, update, patch, delete) with their schedules. While the pod is Running, the
// Emulator performs those requests against the real kube-apiserver as the pod's own service
// account (impersonating
// system:serviceaccount:<ns>:<sa> and its groups), so authentication, RBAC and API Priority and
// Fairness treat them exactly as they would treat the real agent.
//
// Response bodies are streamed and discarded, never decoded: the emulator stays cheap and the
// apiserver is what gets measured. The only bytes read are a list's leading metadata, for the
// continue token of paged lists and the resourceVersion a watch resumes from.
//
// Besides reads (list, watch, get), a behaviour can write, so that the scheduler, controllers and
// watchers get real work:
//
//	# lab.bulkhead.dev/behavior of a CI agent
//	- create: pods          # or configmaps: a small built-in object (template.go), generateName
//	  namespace: busy       # <pod>-, labelled lab.bulkhead.dev/created-by=<pod>; created pods
//	  every: 30s            # are like the filler pods, schedulable on any fake node
//	  burst: 10             # requests per occurrence, one after another (any verb but watch)
//	- delete: pods          # deletes the oldest objects this pod's create made in that
//	  namespace: busy       # namespace; with none left, no request. Parse rejects a delete
//	  every: 30s            # without a matching create: it never deletes anyone else's objects
//	  burst: 10
//	- patch: configmaps/busy/ci-status            # merge patch of annotation lab.bulkhead.dev/touched
//	  every: 10s
//	- update: configmaps/busy/controller-leader   # GET (counted as a get), then PUT back with that
//	  every: 10s                                  # annotation changed; a 409 counts as an error
//
// Writes go as the pod's service account like reads, so its RBAC must allow them (create and
// delete, or get and update, or patch). What creates made stays in memory for the pod's run:
// objects left when a run ends are not deleted, and carry the created-by label to find them.
// Stats count errors per identity, verb and resource, and among them the 429s (Rejected).
//
// Parsing (Parse, Expand) is pure and table-tested; Emulator is the I/O edge. A malformed
// annotation yields a Warning Event on the pod and a log line, and that pod gets no traffic.
package behavior
