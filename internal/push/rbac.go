// The push endpoint's rights when a process serves it alone (--mode=ingest):
// it finds monitors by the token digests their status publishes and writes
// heartbeats into their status, and reads no Secret. make manifests writes
// them into config/ingest/rbac/role.yaml (ClusterRole ingest-role); the
// relay Lease it reads is granted there by hand (one Lease, by name).
//
// +kubebuilder:rbac:groups=monitoring.pushmon.dev,resources=pushmonitors,verbs=get;list;watch
// +kubebuilder:rbac:groups=monitoring.pushmon.dev,resources=pushmonitors/status,verbs=get;update;patch

package push
