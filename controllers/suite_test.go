package controllers_test

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pushmon/pushmon/internal/testutil"
)

// This package's tests are of two kinds in one test binary: the pure tests of
// the state machine (state_test.go, schedule_state_test.go,
// schedule_restart_test.go, package controllers, for they call unexported
// functions such as evaluate), which need no API server, and the reconciler
// tests, which run against one real kube-apiserver and etcd with pushmon's
// manager (testutil.EnvSuite, shared with test/integration).
//
// The control plane is started lazily, by the first test that asks for it
// (newNamespace, which every API test calls first, does), and stopped by
// TestMain only if it was started. So `go test -run 'TestEvaluate' ./controllers/`
// runs the pure tests without starting an apiserver, or needing bin/k8s at
// all. We chose this over moving the pure tests into a package of their own
// because they test unexported functions of this package: another package
// would need production code to export them.
var (
	envOnce   sync.Once
	envErr    error
	suite     *testutil.EnvSuite
	restCfg   *rest.Config
	k8sClient client.Client // uncached: assertions read the API server
	scheme    *runtime.Scheme
	pushAddr  string
)

// envSuite starts the control plane and pushmon's manager the first time it
// is called, and fails the test if they cannot be started.
func envSuite(t *testing.T) *testutil.EnvSuite {
	t.Helper()
	envOnce.Do(func() {
		if suite, envErr = testutil.StartEnvSuite("..", suiteNow); envErr == nil {
			restCfg, k8sClient, scheme, pushAddr = suite.Config, suite.Client, suite.Scheme, suite.PushAddr
		}
	})
	if envErr != nil {
		t.Fatalf("control plane: %v", envErr)
	}
	return suite
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	gomega.SetDefaultEventuallyTimeout(testutil.EventuallyTimeout)
	gomega.SetDefaultConsistentlyDuration(testutil.ConsistentlyDuration)
	code := m.Run()
	if suite != nil { // started by a test
		if code != 0 {
			fmt.Fprintf(os.Stderr, "--- manager log (last 200 lines) ---\n%s\n", suite.Logs.Tail(200))
		}
		if err := suite.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	return code
}
