package plugin

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/plugin"
	"github.com/pushmon/pushmon/internal/testutil"
)

// result is one run of the plugin's cobra root.
type result struct {
	out, errOut string
	code        int
}

// run runs `kubectl pushmon args...` in-process against the suite's API
// server, through plugin.Execute as cmd/kubectl-pushmon calls it.
func run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := plugin.Execute(ctx, append([]string{"--kubeconfig", suite.Kubecfg}, args...),
		genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return result{out: out.String(), errOut: errOut.String(), code: code}
}

// mustRun is run that fails the test unless the command succeeded.
func mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := run(t, args...)
	if r.code != 0 {
		t.Fatalf("kubectl pushmon %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.out, r.errOut)
	}
	return r
}

// noToken checks that none of the outputs holds tok.
func noToken(t *testing.T, tok string, rs ...result) {
	t.Helper()
	g := NewWithT(t)
	g.Expect(tok).To(MatchRegexp(testutil.TokenAlphabet.String()))
	for _, r := range rs {
		g.Expect(r.out).NotTo(ContainSubstring(tok), "token on stdout")
		g.Expect(r.errOut).NotTo(ContainSubstring(tok), "token on stderr")
	}
}

func newMonitor(t *testing.T, ns, name string, spec monitoringv1alpha1.PushMonitorSpec) (*monitoringv1alpha1.PushMonitor, string) {
	t.Helper()
	m := testutil.Monitor(ns, name, spec)
	tok := suite.CreateMonitor(t, m)
	return m, tok
}

func get(g Gomega, m *monitoringv1alpha1.PushMonitor) *monitoringv1alpha1.PushMonitor {
	return suite.GetMonitor(g, m)
}

func secretOf(g Gomega, m *monitoringv1alpha1.PushMonitor) *corev1.Secret {
	var s corev1.Secret
	g.Expect(suite.Client.Get(context.Background(), client.ObjectKey{Namespace: m.Namespace, Name: m.DesiredSecretName()}, &s)).To(Succeed())
	return &s
}

// row is the line of a table that starts with the given columns.
func row(out string, cols ...string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(l)[:min(len(cols), len(strings.Fields(l)))], " ") == strings.Join(cols, " ") {
			return l
		}
	}
	return ""
}
