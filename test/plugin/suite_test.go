// Package plugin tests `kubectl pushmon` (internal/plugin) against a real
// kube-apiserver and etcd with pushmon's manager running in-process
// (testutil.EnvSuite, as test/integration runs it): each command driven
// through the cobra root with its output captured, and the built binary
// through the real kubectl, as users call it.
package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/onsi/gomega"

	"github.com/pushmon/pushmon/internal/testutil"
)

var suite *testutil.EnvSuite

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
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- manager log (last 100 lines) ---\n%s\n", suite.Logs.Tail(100))
	}
	return code
}
