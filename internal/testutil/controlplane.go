package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// RenderWebhooks renders a kustomization (config/webhook) with kubectl and
// returns its webhook configurations as envtest installs them, with its own
// certificate and the local webhook port.
func RenderWebhooks(kubectl, dir string) (envtest.WebhookInstallOptions, error) {
	var opts envtest.WebhookInstallOptions
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		return opts, fmt.Errorf("kubectl kustomize %s: %w", dir, err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var doc runtime.RawExtension
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return opts, err
		}
		obj, _, err := clientgoscheme.Codecs.UniversalDeserializer().Decode(doc.Raw, nil, nil)
		if err != nil {
			return opts, err
		}
		switch h := obj.(type) {
		case *admissionv1.MutatingWebhookConfiguration:
			opts.MutatingWebhooks = append(opts.MutatingWebhooks, h)
		case *admissionv1.ValidatingWebhookConfiguration:
			opts.ValidatingWebhooks = append(opts.ValidatingWebhooks, h)
		}
	}
	if len(opts.MutatingWebhooks)+len(opts.ValidatingWebhooks) == 0 {
		return opts, fmt.Errorf("no webhook configuration in %s", dir)
	}
	return opts, nil
}

// Process is a binary (a control plane component, pushmon's manager) run
// as a child process with its output captured.
type Process struct {
	Cmd    *exec.Cmd
	Out    *SyncBuffer
	Exited chan struct{}
}

// Start runs bin with args.
func Start(bin string, args ...string) (*Process, error) {
	p := &Process{Out: &SyncBuffer{}, Exited: make(chan struct{})}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	if err := p.Cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.Cmd.Wait(); close(p.Exited) }()
	return p, nil
}

// Stop asks the process to exit (SIGTERM), kills it after 15s, and waits.
func (p *Process) Stop() {
	if p == nil || p.Cmd.Process == nil {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.Exited:
	case <-time.After(15 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.Exited
	}
}

// WaitListening waits until addr accepts TCP connections, or the process
// exits, or within passes.
func (p *Process) WaitListening(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.Exited:
			return fmt.Errorf("%s exited: %s", filepath.Base(p.Cmd.Path), p.Out.Tail(40))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s after %v: %s", filepath.Base(p.Cmd.Path), addr, within, p.Out.Tail(40))
		}
	}
}

// StartKubeControllerManager runs bin/k8s's kube-controller-manager with
// only the CronJob, Job and garbage collector controllers, against the API server kubeconfig
// points to, and waits until it serves.
func StartKubeControllerManager(assets, kubeconfig string) (*Process, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	p, err := Start(filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig,
		"--controllers=cronjob,job,garbagecollector",
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--bind-address=127.0.0.1", "--secure-port="+port,
	)
	if err != nil {
		return nil, fmt.Errorf("starting kube-controller-manager: %w", err)
	}
	if err := p.WaitListening(addr, time.Minute); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// RunPod plays the node for a pod where no kubelet runs (the tests, make
// demo): it resolves each container's env as the kubelet would (a
// secretKeyRef is read through the API), runs the init containers and then
// the containers' commands on this machine in order, stopping at the first
// failure, and writes the outcome into the pod's status as the kubelet
// would, so that the Job controller sees it. It returns the commands'
// combined output.
func RunPod(ctx context.Context, c client.Client, pod *corev1.Pod) (string, error) {
	phase := corev1.PodSucceeded
	var statuses []corev1.ContainerStatus
	var output bytes.Buffer
	for _, ctr := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		env := []string{"PATH=" + os.Getenv("PATH")}
		for _, e := range ctr.Env {
			v, err := resolveEnv(ctx, c, pod.Namespace, e)
			if err != nil {
				return output.String(), fmt.Errorf("container %s: %w", ctr.Name, err)
			}
			env = append(env, e.Name+"="+v)
		}
		argv := append(append([]string(nil), ctr.Command...), ctr.Args...)
		if len(argv) == 0 {
			return output.String(), fmt.Errorf("container %s: no command to run (the image's entrypoint is unknown here)", ctr.Name)
		}
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, &output, &output
		code := 0
		var exit *exec.ExitError
		if err := cmd.Run(); errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			return output.String(), fmt.Errorf("container %s: %w", ctr.Name, err)
		}
		reason := "Completed"
		if code != 0 {
			phase, reason = corev1.PodFailed, "Error"
		}
		now := metav1.Now()
		statuses = append(statuses, corev1.ContainerStatus{Name: ctr.Name, Image: ctr.Image, ImageID: ctr.Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: int32(code), Reason: reason, StartedAt: now, FinishedAt: now}}})
		if code != 0 {
			break
		}
	}
	// The Job controller updates the pod too (its finalizer): retry on
	// conflict as any writer of a shared object does.
	return output.String(), retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur corev1.Pod
		if err := c.Get(ctx, client.ObjectKeyFromObject(pod), &cur); err != nil {
			return err
		}
		cur.Status.Phase = phase
		cur.Status.ContainerStatuses = statuses
		return c.Status().Update(ctx, &cur)
	})
}

// resolveEnv is an env var's value as the kubelet would give it; this
// stand-in node knows literal values and secretKeyRefs.
func resolveEnv(ctx context.Context, c client.Client, ns string, e corev1.EnvVar) (string, error) {
	switch {
	case e.ValueFrom == nil:
		return e.Value, nil
	case e.ValueFrom.SecretKeyRef != nil:
		ref := e.ValueFrom.SecretKeyRef
		var s corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, &s); err != nil {
			return "", fmt.Errorf("env %s: %w", e.Name, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			return "", fmt.Errorf("env %s: Secret %s has no key %s", e.Name, ref.Name, ref.Key)
		}
		return string(v), nil
	default:
		return "", fmt.Errorf("env %s: only value and secretKeyRef are resolved here", e.Name)
	}
}
