// Package plugin is `kubectl pushmon`: a status table of PushMonitors first,
// then the actions people take on one (push, ping, rotate, suspend, resume,
// history, url), as CloudNativePG's `kubectl cnpg` orders them.
//
// It talks to the API server with the caller's kubeconfig and RBAC only; the
// push token it reads from a monitor's Secret (for push, ping and url) is
// never written to a log, an error or any output but url's.
package plugin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// Options is what every command shares: the kubeconfig flags and the streams.
type Options struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams
	// Now is the clock ages are shown against (tests fix it).
	Now func() time.Time

	client client.Client
}

// NewCommand is the root command, `kubectl pushmon`.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{
		ConfigFlags: genericclioptions.NewConfigFlags(true),
		IOStreams:   streams,
		Now:         time.Now,
	}
	root := &cobra.Command{
		Use:   "kubectl-pushmon",
		Short: "Inspect and drive pushmon's PushMonitors",
		Long: "kubectl pushmon shows PushMonitors (status, history) and acts on them\n" +
			"(push, ping, rotate, suspend, resume, url), with your kubeconfig and RBAC.",
		// Errors are printed once, by Execute, as one line; usage only on
		// flag errors would need cobra's help, which -h gives.
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations: map[string]string{
			// Help and usage say "kubectl pushmon", as users type it.
			cobra.CommandDisplayNameAnnotation: "kubectl pushmon",
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	o.ConfigFlags.AddFlags(root.PersistentFlags())
	root.AddCommand(
		newStatusCommand(o),
		newPushCommand(o),
		newPingCommand(o),
		newRotateCommand(o),
		newSuspendCommand(o, true),
		newSuspendCommand(o, false),
		newHistoryCommand(o),
		newURLCommand(o),
	)
	return root
}

// Execute runs the command line args and prints a failure as one line on
// errOut; it returns the process's exit code.
func Execute(ctx context.Context, args []string, streams genericiooptions.IOStreams) int {
	cmd := NewCommand(streams)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		PrintError(streams.ErrOut, err)
		return 1
	}
	return 0
}

// PrintError prints err as kubectl does: "error: ..." on one line.
func PrintError(w io.Writer, err error) {
	fmt.Fprintf(w, "error: %s\n", oneLine(err.Error()))
}

// Scheme is what the plugin reads: client-go's types and pushmon's API.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(monitoringv1alpha1.AddToScheme(s))
	return s
}

// Client is an uncached client for the kubeconfig the flags select: each
// command reads a few objects once, so a cache would only cost a watch.
func (o *Options) Client() (client.Client, error) {
	if o.client != nil {
		return o.client, nil
	}
	cfg, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	// API warnings (deprecations) on stderr as kubectl prints them, not
	// through controller-runtime's logger, which the plugin does not set up.
	cfg.WarningHandler = rest.NewWarningWriter(o.ErrOut, rest.WarningWriterOptions{Deduplicate: true})
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, friendly(err)
	}
	o.client = c
	return c, nil
}

// Namespace is -n, else the kubeconfig context's namespace, else "default".
func (o *Options) Namespace() (string, error) {
	ns, _, err := o.ConfigFlags.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// completeNames completes PushMonitor names in the namespace for the first
// n arguments (every argument when n is 0), so that `kubectl pushmon push
// <TAB>` offers the monitors, as kubectl's own commands offer objects.
func (o *Options) completeNames(n int, then ...string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if n > 0 && len(args) >= n {
			// Past the names: the fixed words that may follow (ping's signals).
			if len(args) == n {
				return then, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := o.Client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		ns, err := o.Namespace()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var list monitoringv1alpha1.PushMonitorList
		if err := c.List(cmd.Context(), &list, client.InNamespace(ns)); err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		for _, m := range list.Items {
			if strings.HasPrefix(m.Name, toComplete) && !slices.Contains(args, m.Name) {
				out = append(out, cobra.CompletionWithDesc(m.Name, string(m.Status.State)))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
