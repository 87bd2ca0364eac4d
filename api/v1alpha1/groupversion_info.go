// Package v1alpha1 holds the PushMonitor API of the monitoring.pushmon.dev group.
//
// +kubebuilder:object:generate=true
// +groupName=monitoring.pushmon.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the PushMonitor API.
	GroupVersion = schema.GroupVersion{Group: "monitoring.pushmon.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the API's types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the API's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers the API's kinds and their lists in GroupVersion.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &PushMonitor{}, &PushMonitorList{},
		&AlertChannel{}, &AlertChannelList{}, &ClusterAlertChannel{}, &ClusterAlertChannelList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
