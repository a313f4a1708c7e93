// Package behavior emulates the API traffic of agents that the lab's fake nodes cannot run.
//
// A pod annotated with lab.bulkhead.dev/behavior carries a YAML list of actions (list, watch,
// get) with their schedules. While the pod is Running, the Emulator performs those requests
// against the real kube-apiserver as the pod's own service account (impersonating
// system:serviceaccount:<ns>:<sa> and its groups), so authentication, RBAC and API Priority and
// Fairness treat them exactly as they would treat the real agent.
//
// Response bodies are streamed and discarded, never decoded: the emulator stays cheap and the
// apiserver is what gets measured. The only bytes read are a list's leading metadata, for the
// continue token of paged lists and the resourceVersion a watch resumes from.
//
// Parsing (Parse, Expand) is pure and table-tested; Emulator is the I/O edge. A malformed
// annotation yields a Warning Event on the pod and a log line, and that pod gets no traffic.
package behavior
