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
//     (start its rollout with its policy's Settings; a new template supersedes a rollout under
//     way), Step a rollout under way, Release one opted out, or nothing. Observe policies
//     adopt a DaemonSet the DaemonSet controller rolls out by itself, to measure it only.
//  4. The rollout core (RolloutEngine around rollout.Engine, the one `bulkhead rollout`
//     runs) does one bounded step — observe → decide → act → save, the state on the
//     DaemonSet — and says when to come back (StepResult.RequeueAfter). A crash between steps
//     loses nothing: the next step re-reads the world, and a soak whose samples died with
//     the process starts again. After each action the DaemonSet's RolloutStatus (a view of
//     the state for kubectl get) is brought in step.
//  5. Housekeeping, from the caches every few seconds, writes only what changed: each
//     policy's status (guarded, rolling, halted, a Ready condition), the standing
//     compartments (sized from a completed rollout's steady demand, with hysteresis;
//     removed with their DaemonSet), and the lanes of DaemonSets deleted mid-rollout.
//
// Replicas share the work through a Lease (client-go leaderelection): all keep warm caches,
// only the leader runs the queue and housekeeping, and a replica that loses the Lease exits.
package controller
