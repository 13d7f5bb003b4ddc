package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	kgw "github.com/kailash-gateway/kgw/clients/go"
	"github.com/kailash-gateway/kgw/server"
)

var workflowGroup = &group{
	name:    "workflow",
	summary: "Register, list, get and delete workflows on the gateway.",
	subs: []subcommand{
		{"register", "-f FILE", "register a workflow from a YAML or JSON file (a new version if the name exists)", runWorkflowRegister},
		{"validate", "-f FILE", "run every registration check on a workflow file, offline (no gateway)", runWorkflowValidate},
		{"list", "", "list registered workflows", runWorkflowList},
		{"get", "NAME [--version N]", "show a workflow; -o yaml prints a file that registers again", runWorkflowGet},
		{"delete", "NAME", "delete a workflow and all its versions", runWorkflowDelete},
	},
}

func runWorkflowRegister(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "workflow register", "-f FILE [flags]",
		"Registers the workflow defined in FILE (YAML or JSON; nodes with inline code or\ncode_file paths relative to FILE, see docs/workflow-files.md). FILE - reads\nstandard input (code_file paths then relative to the working directory).\nRegistering an existing name stores the next version.")
	var file string
	var validateOnly bool
	k.fs.StringVar(&file, "file", "", "workflow file (.yaml, .yml or .json; - for standard input)")
	k.alias("f", "file")
	k.fs.BoolVar(&validateOnly, "validate-only", false, "let the gateway check the workflow as a registration would, without storing it")
	if _, err := k.parse(args, 0, 0); err != nil {
		return err
	}
	if file == "" {
		return k.usageErr("missing -f FILE")
	}
	var (
		wf  *kgw.Workflow
		err error
	)
	if file == "-" {
		var data []byte
		if data, err = c.readInput("-"); err == nil {
			wf, err = kgw.ParseWorkflow(data, "", "")
		}
	} else {
		wf, err = kgw.LoadWorkflowFile(file)
	}
	if err != nil {
		var fe *kgw.FileError
		if errors.As(err, &fe) {
			fmt.Fprintf(c.stderr, "kgw %s: invalid workflow file:\n%v\n", k.name, err)
			return errUsage
		}
		return k.usageErr("%v", err)
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		register := cl.Register
		if validateOnly {
			register = cl.ValidateWorkflow
		}
		got, err := register(ctx, wf)
		if err != nil {
			return err
		}
		if k.json() {
			return k.printProto("workflow", got)
		}
		if validateOnly {
			fmt.Fprintf(c.stdout, "workflow %s is valid (%d nodes); nothing was stored\n", got.GetName(), len(got.GetNodes()))
			return nil
		}
		fmt.Fprintf(c.stdout, "registered workflow %s version %d (%d nodes)\n", got.GetName(), got.GetVersion(), len(got.GetNodes()))
		return nil
	})
}

func runWorkflowList(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "workflow list", "[flags]", "Lists the registered workflows with their latest version.")
	if _, err := k.parse(args, 0, 0); err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		var all []*kgw.WorkflowSummary
		for w, err := range cl.ListWorkflows(ctx) {
			if err != nil {
				return err
			}
			all = append(all, w)
		}
		if k.json() {
			return printList(k, "workflows", all)
		}
		rows := make([][]string, 0, len(all))
		for _, w := range all {
			rows = append(rows, []string{
				w.GetName(), itoa(w.GetLatestVersion()), itoa(w.GetNodeCount()),
				orDash(strings.Join(w.GetRequiredResources(), ",")), formatLabels(w.GetLabels()),
				formatTime(w.GetCreateTime().AsTime()), orDash(w.GetDescription()),
			})
		}
		k.table("NAME\tVERSION\tNODES\tRESOURCES\tLABELS\tCREATED\tDESCRIPTION", rows)
		return nil
	})
}

func runWorkflowGet(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "workflow get", "NAME [--version N] [flags]",
		"Shows a workflow version (the latest by default). -o yaml prints it as a workflow\nfile with the code inline, which `kgw workflow register -f` accepts again.",
		"text", "json", "yaml")
	var version int
	k.fs.IntVar(&version, "version", 0, "version to show (0 = latest)")
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if version < 0 {
		return k.usageErr("--version must not be negative")
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		wf, err := cl.GetWorkflow(ctx, pos[0], version)
		if err != nil {
			return err
		}
		switch k.flags.output {
		case "json":
			return k.printProto("workflow", wf)
		case "yaml":
			b, err := kgw.MarshalWorkflow(wf, "yaml")
			if err != nil {
				return fmt.Errorf("write workflow file: %w", err)
			}
			_, err = c.stdout.Write(b)
			return err
		}
		printWorkflow(k, wf)
		return nil
	})
}

// printWorkflow writes the text form of wf: its fields, its nodes and its
// connections (the code only with -o yaml).
func printWorkflow(k *clientCmd, wf *kgw.Workflow) {
	w := k.c.stdout
	timeout := "300s (default)"
	if d := wf.GetTimeout(); d != nil && d.AsDuration() > 0 {
		timeout = d.AsDuration().String()
	}
	fmt.Fprintf(w, "name:        %s\n", wf.GetName())
	fmt.Fprintf(w, "version:     %d\n", wf.GetVersion())
	fmt.Fprintf(w, "description: %s\n", orDash(wf.GetDescription()))
	fmt.Fprintf(w, "timeout:     %s\n", timeout)
	fmt.Fprintf(w, "labels:      %s\n", formatLabels(wf.GetLabels()))
	if wf.GetDisableJournal() {
		fmt.Fprintf(w, "journal:     disabled\n")
	}
	fmt.Fprintf(w, "created:     %s\n\n", formatTime(wf.GetCreateTime().AsTime()))
	rows := make([][]string, 0, len(wf.GetNodes()))
	for _, n := range wf.GetNodes() {
		nt := "-"
		if d := n.GetTimeout(); d != nil && d.AsDuration() > 0 {
			nt = d.AsDuration().String()
		}
		rows = append(rows, []string{
			n.GetId(), orDash(strings.Join(n.GetRequiredResources(), ",")), nt,
			formatRetry(n.GetRetry()), itoa(strings.Count(strings.TrimRight(n.GetCode(), "\n"), "\n") + 1), orDash(n.GetDescription()),
		})
	}
	k.table("NODE\tRESOURCES\tTIMEOUT\tRETRY\tLINES\tDESCRIPTION", rows)
	if len(wf.GetConnections()) > 0 {
		fmt.Fprintln(w, "\nCONNECTIONS")
		for _, cn := range wf.GetConnections() {
			switch {
			case cn.GetFromOutput() == "":
				fmt.Fprintf(w, "  %s -> %s (pass all)\n", cn.GetFromNode(), cn.GetToNode())
			case cn.GetToInput() == "" || cn.GetToInput() == cn.GetFromOutput():
				fmt.Fprintf(w, "  %s.%s -> %s\n", cn.GetFromNode(), cn.GetFromOutput(), cn.GetToNode())
			default:
				fmt.Fprintf(w, "  %s.%s -> %s.%s\n", cn.GetFromNode(), cn.GetFromOutput(), cn.GetToNode(), cn.GetToInput())
			}
		}
	}
	fmt.Fprintf(w, "\nThe code: kgw workflow get %s --version %d -o yaml\n", wf.GetName(), wf.GetVersion())
}

// formatRetry describes a retry policy: "3 attempts, 1s..1m0s x2".
func formatRetry(r *kgw.RetryPolicy) string {
	if r == nil || r.GetMaxAttempts() <= 1 {
		return "-"
	}
	s := fmt.Sprintf("%d attempts", r.GetMaxAttempts())
	if r.GetInitialBackoff() != nil || r.GetMaxBackoff() != nil {
		lo, hi := "1s", "1m0s"
		if r.GetInitialBackoff() != nil {
			lo = r.GetInitialBackoff().AsDuration().String()
		}
		if r.GetMaxBackoff() != nil {
			hi = r.GetMaxBackoff().AsDuration().String()
		}
		s += ", " + lo + ".." + hi
	}
	if m := r.GetMultiplier(); m > 0 {
		s += fmt.Sprintf(" x%g", m)
	}
	return s
}

// formatLabels prints labels as k=v,k=v in key order.
func formatLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(labels))
	for _, key := range sortedKeys(labels) {
		parts = append(parts, key+"="+labels[key])
	}
	return strings.Join(parts, ",")
}

func runWorkflowDelete(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "workflow delete", "NAME [flags]",
		"Deletes a workflow and all its versions; running executions finish.")
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		if err := cl.DeleteWorkflow(ctx, pos[0]); err != nil {
			return err
		}
		if k.json() {
			return k.printDoc(nil)
		}
		fmt.Fprintf(c.stdout, "deleted workflow %s\n", pos[0])
		return nil
	})
}

// errInvalidWorkflow reports a workflow file that fails validation (exit
// status 1); the problems were printed.
var errInvalidWorkflow = errors.New("invalid workflow")

// runWorkflowValidate runs, without a gateway, every check RegisterWorkflow
// makes, and prints each problem at its place in the files: a Starlark
// error at its line in the YAML/JSON file (or the code_file), not relative
// to the code block.
func runWorkflowValidate(_ context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("kgw workflow validate", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var file string
	fs.StringVar(&file, "file", "", "workflow file (.yaml, .yml or .json; - for standard input)")
	fs.StringVar(&file, "f", "", "workflow file (shorthand for --file)")
	fs.Usage = func() {
		fmt.Fprint(c.stderr, "Usage: kgw workflow validate -f FILE\n\nRuns every check the gateway makes when registering FILE (fields, names,\nlimits, connections, cycles, and compiling each node's code), offline, and\nprints each problem as FILE:LINE:COL: field: message. Exit status 0 when\nthe gateway would accept it, 1 when not.\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "kgw workflow validate: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	if file == "" {
		fmt.Fprintln(c.stderr, "kgw workflow validate: missing -f FILE")
		return errUsage
	}
	var (
		wf      *kgw.Workflow
		sources []kgw.CodeSource
		err     error
	)
	name := file
	if file == "-" {
		name = "<stdin>"
		var data []byte
		if data, err = c.readInput("-"); err == nil {
			wf, sources, err = kgw.ParseWorkflowSource(data, "", "", name)
		}
	} else {
		wf, sources, err = kgw.LoadWorkflowSource(file)
	}
	if err != nil {
		var fe *kgw.FileError
		if errors.As(err, &fe) {
			if fe.Path == "" {
				fe.Path = name
			}
			fmt.Fprintln(c.stdout, fe.Error())
			return errInvalidWorkflow
		}
		fmt.Fprintf(c.stderr, "kgw workflow validate: %v\n", err)
		return errUsage
	}
	problems := server.CheckWorkflow(wf)
	for _, p := range problems {
		field := strings.TrimPrefix(strings.TrimPrefix(p.Field, "workflow"), ".")
		if p.Node < 0 || p.Node >= len(sources) {
			fmt.Fprintf(c.stdout, "%s: %s: %s\n", name, field, p.Message)
			continue
		}
		src := sources[p.Node]
		where := src.File
		if where == "" {
			where = name
		}
		line, col := src.Position(p.Line, p.Col)
		msg := p.Message
		if !src.Block {
			msg = fmt.Sprintf("line %d:%d of the code: %s", p.Line, p.Col, p.Message)
		}
		fmt.Fprintf(c.stdout, "%s:%d:%d: %s (node '%s'): %s\n", where, line, col, field, wf.GetNodes()[p.Node].GetId(), msg)
	}
	if len(problems) > 0 {
		return errInvalidWorkflow
	}
	fmt.Fprintf(c.stdout, "%s: valid workflow %s (%d nodes)\n", name, wf.GetName(), len(wf.GetNodes()))
	return nil
}
