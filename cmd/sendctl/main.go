// Command sendctl is the command-line client of the sendworker admin HTTP
// API: enqueue, review and approve sends, pause, and look up provider data.
// Run "sendctl help" for commands, flags and exit codes; the program itself
// is package cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sendworker/sendworker/cmd/sendctl/internal/cli"
)

func main() {
	os.Exit(run())
}

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
}
