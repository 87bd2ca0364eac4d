// Command golangci-kal is golangci-lint with kube-api-linter compiled in as a
// module plugin ("kubeapilinter" in .golangci.yml). It stands in for the
// binary `golangci-lint custom` would build, which needs git access to GitHub;
// this one builds from the Go module proxy alone, at the versions hack/tools
// pins: make golangci-lint puts it at bin/golangci-lint.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/golangci/golangci-lint/v2/pkg/commands"
	"github.com/golangci/golangci-lint/v2/pkg/exitcodes"

	// Registers the "kubeapilinter" module plugin (its init calls
	// register.Plugin) with all of kube-api-linter's analyzers.
	_ "sigs.k8s.io/kube-api-linter"
)

func main() {
	if err := commands.Execute(buildInfo()); err != nil {
		fmt.Fprintf(os.Stderr, "golangci-lint: %v\n", err)
		os.Exit(exitcodes.Failure)
	}
}

// buildInfo reports the pinned module versions in golangci-lint --version.
func buildInfo() commands.BuildInfo {
	info := commands.BuildInfo{Version: "unknown", Commit: "none", Date: "unknown", GoVersion: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	info.GoVersion = bi.GoVersion
	var kal string
	for _, dep := range bi.Deps {
		switch dep.Path {
		case "github.com/golangci/golangci-lint/v2":
			info.Version = strings.TrimPrefix(dep.Version, "v")
		case "sigs.k8s.io/kube-api-linter":
			kal = dep.Version
		}
	}
	if kal != "" {
		info.Version += " with kube-api-linter " + kal
	}
	return info
}
