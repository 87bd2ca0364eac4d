// Package integration tests pushmon's operator as a whole against a real
// kube-apiserver and etcd (envtest): the push endpoint and its answers,
// hostile input, the coalescer, metrics, token rotation, real clients (curl,
// Python, Node, kubectl), namespaced mode, the CRD's validation, and the
// heartbeat truth rules end to end. Tests of the reconciler alone live in
// controllers/.
package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/pushmon/pushmon/internal/testutil"
)

// The suite starts one real kube-apiserver and etcd (built by
// hack/build-controlplane.sh) and runs pushmon's manager against it, as
// cmd/main.go wires it (testutil.EnvSuite, shared with controllers/). Every
// test here needs it, so it starts before the first. Tests run one at a
// time; each works in its own namespace.
var (
	suite     *testutil.EnvSuite
	testEnv   *envtest.Environment
	restCfg   *rest.Config
	k8sClient client.Client // uncached: assertions read the API server
	scheme    *runtime.Scheme
	kubectl   string
	kubecfg   string
	pushAddr  string
	logs      *testutil.SyncBuffer
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	gomega.SetDefaultEventuallyTimeout(testutil.EventuallyTimeout)
	gomega.SetDefaultConsistentlyDuration(testutil.ConsistentlyDuration)
	var err error
	if suite, err = testutil.StartEnvSuite(filepath.Join("..", ".."), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := suite.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	testEnv, restCfg, k8sClient, scheme = suite.Env, suite.Config, suite.Client, suite.Scheme
	kubectl, kubecfg, pushAddr, logs = suite.Kubectl, suite.Kubecfg, suite.PushAddr, suite.Logs
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- manager log (last 200 lines) ---\n%s\n", logs.Tail(200))
	}
	return code
}

func startManager() error { return suite.StartManager() }
func stopManager()        { suite.StopManager() }
func freeAddr() (string, error) {
	return testutil.FreeAddr()
}
