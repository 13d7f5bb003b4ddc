package main

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	kgw "github.com/kailash-gateway/kgw/clients/go"
)

var executionsGroup = &group{
	name:    "executions",
	summary: "List, inspect, follow and cancel executions.",
	subs: []subcommand{
		{"list", "[--workflow W] [--status S] [--limit N]", "list executions, newest first", runExecutionsList},
		{"get", "ID", "show an execution: status, per-node state, result, error", runExecutionsGet},
		{"watch", "ID [--after-seq N]", "stream the events of an execution until it ends", runExecutionsWatch},
		{"cancel", "ID", "cancel a running execution", runExecutionsCancel},
	},
}

// parseStatus accepts "failed", "FAILED" or "EXECUTION_STATUS_FAILED".
func parseStatus(s string) (kgw.Status, bool) {
	st := kgw.Status(strings.ToLower(strings.TrimPrefix(strings.ToUpper(s), "EXECUTION_STATUS_")))
	switch st {
	case kgw.StatusPending, kgw.StatusRunning, kgw.StatusCompleted, kgw.StatusFailed, kgw.StatusCancelled, kgw.StatusTimedOut:
		return st, true
	}
	return "", false
}

func runExecutionsList(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "executions list", "[--workflow W] [--status S] [--limit N] [flags]",
		"Lists executions, newest first.")
	var (
		workflow, status string
		limit            int
	)
	k.fs.StringVar(&workflow, "workflow", "", "only executions of this workflow")
	k.fs.StringVar(&status, "status", "", "only executions in this state: pending, running, completed, failed, cancelled, timed_out")
	k.fs.IntVar(&limit, "limit", 20, "at most this many executions (0 = all)")
	if _, err := k.parse(args, 0, 0); err != nil {
		return err
	}
	filter := kgw.ExecutionFilter{Workflow: workflow}
	if status != "" {
		st, ok := parseStatus(status)
		if !ok {
			return k.usageErr("--status %q: want pending, running, completed, failed, cancelled or timed_out", status)
		}
		filter.Status = st
	}
	if limit < 0 {
		return k.usageErr("--limit must not be negative")
	}
	if limit > 0 {
		filter.PageSize = min(limit, 1000)
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		var all []*kgw.Execution
		for ex, err := range cl.ListExecutions(ctx, filter) {
			if err != nil {
				return err
			}
			all = append(all, ex)
			if limit > 0 && len(all) == limit {
				break
			}
		}
		if k.json() {
			return printExecutionList(k, all)
		}
		rows := make([][]string, 0, len(all))
		for _, ex := range all {
			dur := "-"
			if !ex.StartTime.IsZero() && !ex.EndTime.IsZero() {
				dur = formatDuration(ex.EndTime.Sub(ex.StartTime))
			}
			errCol := "-"
			if ex.Error != nil {
				errCol = clip(errText(ex.Error), 80)
			}
			rows = append(rows, []string{ex.ID, ex.Workflow, itoa(ex.Version), statusText(ex.Status),
				formatTime(ex.CreateTime), dur, errCol})
		}
		k.table("ID\tWORKFLOW\tVERSION\tSTATUS\tCREATED\tDURATION\tERROR", rows)
		return nil
	})
}

// printExecutionList prints {"executions": [...]} as protojson.
func printExecutionList(k *clientCmd, all []*kgw.Execution) error {
	ps := make([]proto.Message, len(all))
	for i, ex := range all {
		ps[i] = ex.Proto
	}
	return printList(k, "executions", ps)
}

func runExecutionsGet(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "executions get", "ID [flags]",
		"Shows an execution: status, per-node state (attempts, durations, errors), result and error.\nThe exit status is 0 whatever the execution's state.")
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		ex, err := cl.GetExecution(ctx, pos[0])
		if err != nil {
			return err
		}
		if k.json() {
			return k.printProto("execution", ex.Proto)
		}
		printExecution(c.stdout, ex, true)
		return nil
	})
}

func runExecutionsWatch(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "executions watch", "ID [--after-seq N] [flags]",
		"Streams the events of an execution (from the start, or after --after-seq) until it\nends, then prints the result. With -o json, one {\"event\": ...} document per line.\nExit status: 0 COMPLETED; 1 FAILED, TIMED_OUT or CANCELLED; 2 usage error; 3 RPC error.")
	k.defTimeout = 0
	var afterSeq int64
	k.fs.Int64Var(&afterSeq, "after-seq", 0, "only events with a larger seq (0 = from the start)")
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if afterSeq < 0 {
		return k.usageErr("--after-seq must not be negative")
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		return followEvents(ctx, k, cl, cl.Watch(ctx, pos[0], afterSeq))
	})
}

func runExecutionsCancel(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "executions cancel", "ID [flags]",
		"Cancels an execution: running nodes see their context cancelled and the status\nbecomes CANCELLED. Prints the state after the cancellation.")
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		ex, err := cl.CancelExecution(ctx, pos[0])
		if err != nil {
			return err
		}
		if k.json() {
			return k.printProto("execution", ex.Proto)
		}
		fmt.Fprintf(c.stdout, "execution %s: %s\n", ex.ID, statusText(ex.Status))
		return nil
	})
}
