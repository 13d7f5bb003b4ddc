// Command kgw is Kailash Gateway: `kgw serve` runs the gRPC workflow gateway;
// the other subcommands are its command-line client (docs/cli.md).
//
// Usage:
//
//	kgw serve [flags]                          run the gateway (see `kgw serve -h`)
//	kgw workflow register|list|get|delete      manage workflows
//	kgw workflow validate -f FILE              check a workflow file offline
//	kgw run WORKFLOW [flags]                   execute a workflow
//	kgw executions list|get|watch|cancel       inspect and cancel executions
//	kgw secrets put|list|get|delete            manage secrets
//	kgw secrets rotate-master-key [flags]      re-wrap every secret under a new master key (offline)
//	kgw auth create-key --role R --name N      create an API key in the store (offline) and print it once
//	kgw resources put|list|get|delete|pools|check  manage named resources and pools
//	kgw auth keys create|list|revoke           manage API keys
//	kgw auth bindings create|delete|list       manage role bindings
//	kgw auth whoami                            show the caller's identity
//	kgw completion bash|zsh|fish               print a shell completion script
//	kgw version                                print the version
//	kgw help                                   list the commands
//
// Exit status: 0 success; 1 an execution ended FAILED, TIMED_OUT or
// CANCELLED (or a local failure); 2 a usage error; 3 a failed RPC.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	kgw "github.com/kailash-gateway/kgw/clients/go"
)

// cli is what a subcommand may use of its environment, so tests can run
// subcommands in-process.
type cli struct {
	stdin          io.Reader // nil reads as empty
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
		{"workflow", "register, list, get and delete workflows", workflowGroup.run},
		{"run", "execute a workflow and print its result (or --watch its events)", runRun},
		{"executions", "list, get, watch and cancel executions", executionsGroup.run},
		{"secrets", "store, list, get and delete secrets; rotate-master-key (offline)", secretsGroup.run},
		{"resources", "manage named resources; list pools; check a resource", resourcesGroup.run},
		{"auth", "API keys and role bindings; whoami; create-key (offline)", authGroup.run},
		{"completion", "print a shell completion script (bash, zsh, fish)", runCompletion},
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
	code := dispatch(ctx, &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

// dispatch runs the subcommand named by args[0] and returns the exit status.
func dispatch(ctx context.Context, c *cli, args []string) int {
	args = hoistClientFlags(args)
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
		var rpcErr *kgw.Error
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.Is(err, errUsage):
			return exitUsage
		case errors.Is(err, errNotCompleted), errors.Is(err, errInvalidWorkflow):
			return exitNotCompleted
		case errors.As(err, &rpcErr):
			printRPCError(c.stderr, commandName(name, args[1:]), rpcErr)
			return exitRPC
		default:
			fmt.Fprintf(c.stderr, "kgw %s: %v\n", name, err)
			return 1
		}
	}
	fmt.Fprintf(c.stderr, "kgw: unknown command %q\n\n", name)
	usage(c.stderr)
	return 2
}

// commandName names the command for messages: "workflow get" for a
// group's subcommand, "run" for a plain command.
func commandName(name string, args []string) string {
	args = hoistClientFlags(args)
	switch name {
	case "workflow", "executions", "secrets", "resources", "auth":
		if len(args) == 0 {
			return name
		}
		name += " " + args[0]
		if rest := hoistClientFlags(args[1:]); len(rest) > 0 && strings.HasPrefix(name, "auth ") && (args[0] == "keys" || args[0] == "bindings") {
			name += " " + rest[0]
		}
	}
	return name
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: kgw <command> [flags]\n\nCommands:")
	for _, cmd := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintln(w, "\nRun 'kgw <command> --help' for the subcommands and flags of a command.")
	fmt.Fprintln(w, "Exit status: 0 success; 1 execution not COMPLETED; 2 usage error; 3 RPC error.")
}

// runHelp prints the command list, or with an argument the help of that
// command (`kgw help workflow` is `kgw workflow --help`).
func runHelp(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 && args[0] != "help" {
		for _, cmd := range commands {
			if cmd.name == args[0] {
				return cmd.run(ctx, c, append(args[1:], "--help"))
			}
		}
	}
	usage(c.stdout)
	return nil
}
