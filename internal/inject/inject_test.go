package inject

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestInject(t *testing.T) {
	own := corev1.EnvVar{Name: EnvPushInterval, Value: "30s"}
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init"}},
		Containers:     []corev1.Container{{Name: "a"}, {Name: "b", Env: []corev1.EnvVar{own}}},
	}}
	if !Inject(pod, "m-push") {
		t.Fatal("first Inject reported no change")
	}
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		got := map[string]corev1.EnvVar{}
		for _, e := range c.Env {
			if _, dup := got[e.Name]; dup {
				t.Errorf("container %s: %s twice", c.Name, e.Name)
			}
			got[e.Name] = e
		}
		url := got[EnvPushURL]
		if url.Value != "" || url.ValueFrom == nil || url.ValueFrom.SecretKeyRef == nil ||
			url.ValueFrom.SecretKeyRef.Name != "m-push" || url.ValueFrom.SecretKeyRef.Key != "url" {
			t.Errorf("container %s: PUSH_URL = %+v, want a secretKeyRef to m-push/url", c.Name, url)
		}
		interval := got[EnvPushInterval]
		if c.Name == "b" {
			if interval != own {
				t.Errorf("container b: its own PUSH_INTERVAL was replaced: %+v", interval)
			}
		} else if interval.ValueFrom == nil || interval.ValueFrom.SecretKeyRef.Key != "interval" {
			t.Errorf("container %s: PUSH_INTERVAL = %+v, want a secretKeyRef to m-push/interval", c.Name, interval)
		}
	}
	if Inject(pod, "m-push") {
		t.Error("second Inject changed the pod again")
	}
}
