// Command kgw is Kailash Gateway: `kgw serve` runs the gRPC workflow gateway;
// other subcommands print the version or (later) talk to a running gateway.
//
// Usage:
//
//	kgw serve [flags]   run the gateway (see `kgw serve -h`)
//	kgw secrets rotate-master-key [flags]
//	                    re-wrap every secret under a new master key (offline)
//	kgw version         print the version
//	kgw help            list the commands
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// cli is what a subcommand may use of its environment, so tests can run
// subcommands in-process.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

// A command is one subcommand. To add one, append to commands.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"serve", "run the gateway", runServe},
		{"secrets", "offline secret maintenance: rotate-master-key", runSecrets},
		{"version", "print the version", runVersion},
		{"help", "list the commands", runHelp},
	}
}

// errUsage marks a command-line mistake (exit status 2); its message has
// already been printed.
var errUsage = errors.New("usage error")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling so that a second
	// one kills the process at once.
	context.AfterFunc(ctx, stop)
	code := dispatch(ctx, &cli{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

// dispatch runs the subcommand named by args[0] and returns the exit status.
func dispatch(ctx context.Context, c *cli, args []string) int {
	if len(args) == 0 {
		usage(c.stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		name = "help"
	case "-version", "--version":
		name = "version"
	}
	for _, cmd := range commands {
		if cmd.name != name {
			continue
		}
		err := cmd.run(ctx, c, args[1:])
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(c.stderr, "kgw %s: %v\n", name, err)
			return 1
		}
	}
	fmt.Fprintf(c.stderr, "kgw: unknown command %q\n\n", name)
	usage(c.stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: kgw <command> [flags]\n\nCommands:")
	for _, cmd := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintln(w, "\nRun 'kgw <command> -h' for the flags of a command.")
}

func runHelp(_ context.Context, c *cli, _ []string) error {
	usage(c.stdout)
	return nil
}
