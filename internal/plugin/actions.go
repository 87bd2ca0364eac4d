package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

func newRotateCommand(o *Options) *cobra.Command {
	var noWait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:               "rotate NAME",
		ValidArgsFunction: o.completeNames(1),
		Short:             "Issue a monitor a new push token (the old one keeps working for the overlap)",
		Long: "rotate sets the annotation " + token.AnnotationRotateToken + " to a new value, which the\n" +
			"reconciler answers with a new token in the monitor's Secret; the previous token keeps\n" +
			"working for the manager's --token-rotation-overlap (default 24h). Pods that read PUSH_URL\n" +
			"from the Secret at start need a restart to get the new URL.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			m, err := o.getMonitor(ctx, args[0])
			if err != nil {
				return err
			}
			// A new value each time: the reconciler acts on a value once.
			req := o.Now().UTC().Format(time.RFC3339Nano)
			patch := map[string]any{"metadata": map[string]any{"annotations": map[string]string{token.AnnotationRotateToken: req}}}
			if err := o.mergePatch(ctx, m, patch); err != nil {
				return err
			}
			ref := m.Namespace + "/" + m.Name
			fmt.Fprintf(o.Out, "token rotation requested for %s (%s=%s)\n", ref, token.AnnotationRotateToken, req)
			if noWait {
				return nil
			}
			return o.waitRotated(ctx, ref, m, req, timeout)
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the rotation is requested, without waiting for the new token")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the new token")
	return cmd
}

// waitRotated waits until the monitor's Secret records that the reconciler
// acted on req, and says until when the previous token works.
func (o *Options) waitRotated(ctx context.Context, ref string, m *monitoringv1alpha1.PushMonitor, req string, timeout time.Duration) error {
	c, err := o.Client()
	if err != nil {
		return err
	}
	if m.Status.SecretName == "" {
		fmt.Fprintf(o.Out, "%s has no token yet; its first token will be issued as usual\n", ref)
		return nil
	}
	key := client.ObjectKey{Namespace: m.Namespace, Name: m.Status.SecretName}
	var s corev1.Secret
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, key, &s); err != nil {
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return false, err
		}
		return s.Annotations[token.AnnotationRotatedFor] == req, nil
	})
	switch {
	case apierrors.IsForbidden(err):
		// Rotating needs only the monitor; confirming needs the Secret.
		fmt.Fprintf(o.Out, "not allowed to read Secret %s/%s, so not waiting for the new token (%s)\n", key.Namespace, key.Name, friendly(err))
		return nil
	case wait.Interrupted(err):
		return fmt.Errorf("the rotation of %s was not acted on within %s: is the pushmon manager running? (kubectl pushmon history %s)", ref, timeout, m.Name)
	case err != nil:
		return friendly(err)
	}
	fmt.Fprintf(o.Out, "new token issued into Secret %s/%s", key.Namespace, key.Name)
	if exp := s.Annotations[token.AnnotationPreviousExpires]; exp != "" {
		fmt.Fprintf(o.Out, "; the previous token works until %s", exp)
	} else {
		fmt.Fprint(o.Out, "; the previous token no longer works")
	}
	fmt.Fprintln(o.Out)
	return nil
}

func newSuspendCommand(o *Options, suspend bool) *cobra.Command {
	use, short, done := "resume", "Resume a monitor: Down transitions and alerts again (spec.suspend=false)", "resumed"
	if suspend {
		use, short, done = "suspend", "Suspend a monitor: no Down transitions, no alerts (spec.suspend=true)", "suspended"
	}
	return &cobra.Command{
		Use:               use + " NAME...",
		ValidArgsFunction: o.completeNames(0),
		Short:             short,
		Args:              cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			for _, name := range args {
				m, err := o.getMonitor(ctx, name)
				if err != nil {
					return err
				}
				ref := m.Namespace + "/" + m.Name
				if m.Spec.Suspend == suspend {
					fmt.Fprintf(o.Out, "pushmonitor %s already %s\n", ref, done)
					continue
				}
				if err := o.mergePatch(ctx, m, map[string]any{"spec": map[string]any{"suspend": suspend}}); err != nil {
					return err
				}
				fmt.Fprintf(o.Out, "pushmonitor %s %s\n", ref, done)
			}
			return nil
		},
	}
}

// mergePatch applies a JSON merge patch to m, guarded by its UID so that a
// monitor deleted and re-created since it was read is not changed.
func (o *Options) mergePatch(ctx context.Context, m *monitoringv1alpha1.PushMonitor, patch map[string]any) error {
	c, err := o.Client()
	if err != nil {
		return err
	}
	md, _ := patch["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		patch["metadata"] = md
	}
	md["uid"] = string(m.UID)
	data, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if err := c.Patch(ctx, m, client.RawPatch(types.MergePatchType, data)); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return fmt.Errorf("pushmonitor %s/%s was deleted (or re-created) meanwhile", m.Namespace, m.Name)
		}
		return friendly(err)
	}
	return nil
}
