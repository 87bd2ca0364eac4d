// Package deploy checks the install manifests: config/default as kubectl
// renders it, applied with a server-side dry run against a real
// kube-apiserver (envtest, from bin/k8s), its objects checked against each
// other, and the manager run under exactly the RBAC it grants.
package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/testutil"
)

const namespace = "pushmon-system"

var (
	testEnv   *envtest.Environment
	k8sClient client.Client // uncached: assertions read the API server
	scheme    = runtime.NewScheme()
	root      string
	assets    string
	workDir   string
	kubectl   string
	kubecfg   string // system:masters
	// config/default as `kubectl kustomize` renders it, and its objects.
	rendered []byte
	objects  []*unstructured.Unstructured
	// bin/manager built from this tree, once managerBuilt yields nil.
	managerBin   string
	managerBuilt = make(chan error, 1)
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(monitoringv1alpha1.AddToScheme(scheme))
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	// One suite-wide default that fits a real API server under -race on two
	// loaded cores, where installs and their rollouts set the pace (gomega's
	// own: 1s), instead of a timeout on each call; a call that needs another
	// bound says so.
	gomega.SetDefaultEventuallyTimeout(30 * time.Second)
	gomega.SetDefaultConsistentlyDuration(time.Second)
	root, _ = filepath.Abs(filepath.Join("..", ".."))
	var err error
	if assets, err = testutil.Assets(root, "etcd", "kube-apiserver", "kubectl"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubectl = filepath.Join(assets, "kubectl")
	if workDir, err = os.MkdirTemp("", "pushmon-deploy-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)

	if rendered, err = render(filepath.Join(root, "config", "default")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if objects, err = decode(rendered); err != nil {
		fmt.Fprintln(os.Stderr, "decoding the rendered config/default:", err)
		return 1
	}

	// The RBAC test's manager builds while the control plane starts.
	managerBin = filepath.Join(workDir, "manager")
	go func() { managerBuilt <- testutil.BuildManager(root, managerBin) }()

	// No CRDs from envtest: the test installs the rendered CRD itself.
	testEnv = &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := testEnv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		_ = testEnv.Stop() // a half-started control plane must not outlive the test
		return 1
	}
	defer testEnv.Stop() //nolint:errcheck // teardown after the tests: nothing to do about a failure
	if k8sClient, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	b, err := testutil.AdminKubeconfig(testEnv, "deploy-admin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubecfg = filepath.Join(workDir, "kubeconfig")
	if err := os.WriteFile(kubecfg, b, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := installPrerequisites(); err != nil {
		fmt.Fprintln(os.Stderr, "installing the namespace and CRDs:", err)
		return 1
	}
	code := m.Run()
	_ = <-managerBuilt // no go build left running into a removed workDir
	return code
}

// installPrerequisites applies for real what a dry run of the rest needs to
// exist: the namespace (namespaced objects are refused without it, and its
// Pod Security labels judge the Deployment), our CRD as rendered, and the
// cert-manager stand-in CRDs. It waits until the CRDs are established.
func installPrerequisites() error {
	var docs [][]byte
	for _, o := range objects {
		if k := o.GetKind(); k == "Namespace" || k == "CustomResourceDefinition" {
			b, err := yaml.Marshal(o.Object)
			if err != nil {
				return err
			}
			docs = append(docs, b)
		}
	}
	// The namespace and the CRDs: PushMonitor, AlertChannel, ClusterAlertChannel.
	if len(docs) != 4 {
		return fmt.Errorf("config/default renders %d Namespace and CRD objects, want 4", len(docs))
	}
	if out, err := kubectlRun(bytes.Join(docs, []byte("---\n")), "apply", "-f", "-"); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	if out, err := kubectlRun(nil, "apply", "-f", filepath.Join("testdata", "cert-manager-crds.yaml")); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	var failure string
	g := gomega.NewGomega(func(msg string, _ ...int) { failure = msg })
	ok := g.Eventually(func(g gomega.Gomega) {
		for _, name := range []string{"pushmonitors.monitoring.pushmon.dev", "issuers.cert-manager.io", "certificates.cert-manager.io"} {
			crd := &unstructured.Unstructured{}
			crd.SetAPIVersion("apiextensions.k8s.io/v1")
			crd.SetKind("CustomResourceDefinition")
			g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Name: name}, crd)).To(gomega.Succeed())
			g.Expect(established(crd)).To(gomega.BeTrue(), "CRD %s not established", name)
		}
	}).WithPolling(100 * time.Millisecond).Should(gomega.Succeed())
	if !ok {
		return errors.New(failure)
	}
	return nil
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// render runs `kubectl kustomize dir` with bin/k8s's kubectl.
func render(dir string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", dir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %w: %s", dir, err, stderr.String())
	}
	return out, nil
}

// decode splits a multi-document YAML stream into objects.
func decode(b []byte) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var o unstructured.Unstructured
		if err := dec.Decode(&o.Object); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, err
		}
		if len(o.Object) > 0 {
			objs = append(objs, &o)
		}
	}
}

// kubectlRun runs bin/k8s's kubectl as cluster admin against the test API
// server, with stdin, and returns its combined output.
func kubectlRun(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubecfg}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
