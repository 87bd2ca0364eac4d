package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Assets is the directory of the control plane binaries the suites run:
// $KUBEBUILDER_ASSETS, else <root>/bin/k8s, where hack/ builds them. It
// fails, saying how to build them, when one of bins is missing.
func Assets(root string, bins ...string) (string, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s")
	}
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return "", fmt.Errorf("control plane binary %s missing in %s: run `make controlplane` (or `make test`)", b, assets)
		}
	}
	return assets, nil
}

// BuildManager builds pushmon's manager (./cmd of root) into path, as the
// tests that run it as a process need it.
func BuildManager(root, path string) error {
	build := exec.Command("go", "build", "-o", path, "./cmd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the manager: %w\n%s", err, out)
	}
	return nil
}

// AdminKubeconfig adds a system:masters user to a started envtest control
// plane and returns its kubeconfig.
func AdminKubeconfig(env *envtest.Environment, name string) ([]byte, error) {
	user, err := env.ControlPlane.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	return user.KubeConfig()
}
