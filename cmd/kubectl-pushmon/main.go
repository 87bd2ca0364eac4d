// Command kubectl-pushmon is the kubectl plugin `kubectl pushmon`
// (internal/plugin): on the PATH, kubectl runs it for `kubectl pushmon ...`.
package main

import (
	"context"
	"os"
	"os/signal"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/pushmon/pushmon/internal/plugin"
)

func main() {
	// Ctrl-C cancels a wait (rotate) or a push in flight.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := plugin.Execute(ctx, os.Args[1:], genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	stop()
	os.Exit(code)
}
