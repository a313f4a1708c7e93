// Package controller is bulkhead in the cluster: every DaemonSet a RolloutPolicy selects is
// guarded, however it is applied (kubectl, Helm, Argo CD, Flux).
//
// The model, in the order a DaemonSet meets it:
//
//  1. Admission, inside kube-apiserver (deploy/controller/admission.yaml; no webhook): a
//     DaemonSet created, or updated with a new pod template, in the scope of a guard policy is
//     held before the DaemonSet controller sees it — OnDelete, and for a new DaemonSet a
//     required node label no node carries — and annotated as held (package hold names the
//     contract). Held DaemonSets wait whether or not this controller runs.
//  2. Informers feed everything the controller reads: DaemonSets, namespaces, policies,
//     priority levels, compartment schemas and the API servers' EndpointSlices. No periodic LIST.
//  3. A work queue keyed by DaemonSet (Queue) hands one key to one worker at a time. The
//     Reconciler reads the caches and asks Decide (pure) what to do: Adopt a held DaemonSet
//     (start its rollout with its policy's Settings), Step a rollout under way, or nothing.
//  4. The rollout core (Engine) does one bounded step — observe → decide → act → save, the
//     state on the DaemonSet — and says when to come back (StepResult.RequeueAfter). A crash
//     between steps loses nothing: the next step re-reads the world.
//  5. Housekeeping, from the caches every few seconds, writes only what changed: each
//     policy's status (guarded, rolling, halted, a Ready condition) and the standing
//     compartments (sized from a completed rollout's steady demand, with hysteresis;
//     removed with their DaemonSet).
//
// Replicas share the work through a Lease (client-go leaderelection): all keep warm caches,
// only the leader runs the queue and housekeeping, and a replica that loses the Lease exits.
package controller
