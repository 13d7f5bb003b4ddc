package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"

	kgw "github.com/kailash-gateway/kgw/clients/go"
)

const runSummary = `Executes a workflow on the gateway and prints its status, result and error.
With --watch, streams the execution's events as they happen, then the result.

--param k=v: v is read as JSON when it is valid JSON (numbers, true, false,
null, "quoted strings", [arrays], {objects}), otherwise as the literal string:
  --param n=3 --param ids='[1,2]' --param flag=true --param name=ada --param zip='"02134"'
--params-json / --params-file give a whole object; --param keys override its keys.
--resource name=@ref uses the named resource ref ({"ref": "ref"});
--resource name='{"type": "database", "config": {...}, "credentials_ref": "s"}' an inline spec.

Exit status: 0 COMPLETED; 1 FAILED, TIMED_OUT or CANCELLED; 2 usage error; 3 RPC error.`

func runRun(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "run", "WORKFLOW [flags]", runSummary)
	var f runFlags
	k.fs.IntVar(&f.version, "version", 0, "workflow version to run (0 = latest)")
	k.fs.Var(&f.params, "param", "parameter `k=v`; v is JSON if valid JSON, else a string (repeatable)")
	k.fs.StringVar(&f.paramsJSON, "params-json", "", "parameters as a JSON object")
	k.fs.StringVar(&f.paramsFile, "params-file", "", "parameters from a JSON or YAML `file` holding an object (- for standard input)")
	k.fs.StringVar(&f.contextJSON, "context-json", "", "request context as a JSON object (what nodes see as context)")
	k.fs.Var(&f.resources, "resource", "resource `name=@ref` (a named resource) or name=JSON-spec (repeatable)")
	k.fs.DurationVar(&f.timeout, "timeout", 0, "execution timeout, overriding the workflow's (0 = the workflow's); the command waits until the execution ends")
	k.fs.StringVar(&f.idemKey, "idempotency-key", "", "a repeated run with the same key attaches to the first execution")
	k.fs.BoolVar(&f.watch, "watch", false, "stream the execution's events, then print the result")
	k.fs.BoolVar(&f.detach, "detach", false, "start the execution and print its id without waiting (follow it with 'kgw executions watch ID')")
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if f.version < 0 {
		return k.usageErr("--version must not be negative")
	}
	if f.timeout < 0 {
		return k.usageErr("--timeout must not be negative")
	}
	if f.watch && f.detach {
		return k.usageErr("--watch and --detach exclude each other")
	}
	opts, err := f.execOptions(c, k)
	if err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		switch {
		case f.watch:
			return followEvents(ctx, k, cl, cl.Stream(ctx, pos[0], opts...))
		case f.detach:
			id, err := cl.Start(ctx, pos[0], opts...)
			if err != nil {
				return err
			}
			if k.json() {
				b, _ := json.Marshal(id)
				return k.printDoc([]docField{{"executionId", b}})
			}
			fmt.Fprintln(c.stdout, id)
			return nil
		}
		ex, err := cl.Execute(ctx, pos[0], opts...)
		if err != nil {
			return err
		}
		if k.json() {
			if err := k.printProto("execution", ex.Proto); err != nil {
				return err
			}
		} else {
			printExecution(c.stdout, ex, false)
		}
		return exitFor(ex)
	})
}

// runFlags are the flags of `kgw run` but the client's.
type runFlags struct {
	version                             int
	params, resources                   stringsFlag
	paramsJSON, paramsFile, contextJSON string
	timeout                             time.Duration
	idemKey                             string
	watch, detach                       bool
}

// execOptions turns the flags that shape the execution into its options
// (f.version and f.timeout are checked already); a bad parameter, context
// or resource is a usage error of k.
func (f *runFlags) execOptions(c *cli, k *clientCmd) ([]kgw.ExecOption, error) {
	opts := []kgw.ExecOption{kgw.Version(f.version)}
	p, err := buildParams(c, f.paramsJSON, f.paramsFile, f.params)
	if err != nil {
		return nil, k.usageErr("%v", err)
	}
	if p != nil {
		opts = append(opts, kgw.Params(p))
	}
	if f.contextJSON != "" {
		m, err := jsonObject([]byte(f.contextJSON))
		if err != nil {
			return nil, k.usageErr("--context-json: %v", err)
		}
		opts = append(opts, kgw.Context(m))
	}
	specs, err := parseResources(f.resources)
	if err != nil {
		return nil, k.usageErr("%v", err)
	}
	if len(specs) > 0 {
		opts = append(opts, kgw.Resources(specs))
	}
	if f.timeout > 0 {
		opts = append(opts, kgw.Timeout(f.timeout))
	}
	if f.idemKey != "" {
		opts = append(opts, kgw.IdempotencyKey(f.idemKey))
	}
	return opts, nil
}

// exitFor returns nil for a completed execution and errNotCompleted
// otherwise.
func exitFor(ex *kgw.Execution) error {
	if ex.Status == kgw.StatusCompleted {
		return nil
	}
	return errNotCompleted
}

// buildParams merges --params-json or --params-file with the --param
// entries, which win.
func buildParams(c *cli, paramsJSON, paramsFile string, params []string) (map[string]any, error) {
	var out map[string]any
	switch {
	case paramsJSON != "" && paramsFile != "":
		return nil, errors.New("--params-json and --params-file exclude each other")
	case paramsJSON != "":
		m, err := jsonObject([]byte(paramsJSON))
		if err != nil {
			return nil, fmt.Errorf("--params-json: %w", err)
		}
		out = m
	case paramsFile != "":
		data, err := c.readInput(paramsFile)
		if err != nil {
			return nil, fmt.Errorf("--params-file: %w", err)
		}
		ext := strings.ToLower(filepath.Ext(paramsFile))
		if ext == ".yaml" || ext == ".yml" {
			out, err = yamlObject(data)
		} else {
			out, err = jsonObject(data)
		}
		if err != nil {
			return nil, fmt.Errorf("--params-file %s: %w", paramsFile, err)
		}
	}
	for _, kv := range params {
		key, v, err := parseParam(kv)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string]any{}
		}
		out[key] = v
	}
	return out, nil
}

// parseParam parses one --param k=v. v is decoded as JSON when it is valid
// JSON and taken as a literal string otherwise, so n=3 is a number, ok=true
// a bool, ids=[1,2] a list, name=ada the string "ada" and zip='"02134"' the
// string "02134". An empty v is the empty string.
func parseParam(kv string) (string, any, error) {
	key, raw, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return "", nil, fmt.Errorf("--param %q: want key=value", kv)
	}
	if !json.Valid([]byte(raw)) {
		return key, raw, nil
	}
	v, err := decodeJSON([]byte(raw))
	if err != nil {
		return "", nil, fmt.Errorf("--param %s: %w", key, err)
	}
	return key, v, nil
}

// decodeJSON decodes one JSON value. Integers are kept exact: one outside
// ±2^53, which a float64 cannot hold, is an error (quote it to pass a
// string).
func decodeJSON(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, jsonSyntax(err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one JSON value")
	}
	return fromNumbers(v)
}

// fromNumbers replaces the json.Number values in v by float64.
func fromNumbers(v any) (any, error) {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			if i > 1<<53 || i < -(1<<53) {
				return nil, fmt.Errorf("integer %s is outside ±2^53: pass it as a string (\"%s\")", v, v)
			}
			return float64(i), nil
		}
		f, err := v.Float64()
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("number %s is out of range", v)
		}
		if !strings.ContainsAny(v.String(), ".eE") {
			return nil, fmt.Errorf("integer %s is outside ±2^53: pass it as a string (\"%s\")", v, v)
		}
		return f, nil
	case map[string]any:
		for k, e := range v {
			x, err := fromNumbers(e)
			if err != nil {
				return nil, err
			}
			v[k] = x
		}
	case []any:
		for i, e := range v {
			x, err := fromNumbers(e)
			if err != nil {
				return nil, err
			}
			v[i] = x
		}
	}
	return v, nil
}

// jsonObject decodes a JSON object. Syntax errors give the offset, never
// the text around it (the data may be a secret).
func jsonObject(data []byte) (map[string]any, error) {
	v, err := decodeJSON(data)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("want a JSON object ({...})")
	}
	return m, nil
}

// yamlObject decodes a YAML mapping into JSON-like values.
func yamlObject(data []byte) (map[string]any, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	// Through JSON, so the values are exactly those a JSON file would give.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("not JSON-compatible: %w", err)
	}
	return jsonObject(b)
}

// jsonSyntax rewords a JSON decoding error without quoting the input.
func jsonSyntax(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d", se.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("invalid JSON: unexpected end of input")
	}
	return errors.New("invalid JSON")
}

// parseResources parses the --resource entries: name=@ref for a named
// resource, name=JSON for an inline ResourceSpec (protojson; snake_case or
// lowerCamelCase field names).
func parseResources(entries []string) (map[string]*kgw.ResourceSpec, error) {
	out := map[string]*kgw.ResourceSpec{}
	for _, e := range entries {
		name, raw, ok := strings.Cut(e, "=")
		if !ok || name == "" || raw == "" {
			return nil, fmt.Errorf("--resource %q: want name=@ref or name=JSON-spec", e)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--resource %s given twice", name)
		}
		spec, err := parseSpec([]byte(raw))
		if err != nil {
			return nil, fmt.Errorf("--resource %s: %w", name, err)
		}
		out[name] = spec
	}
	return out, nil
}

// parseSpec parses "@ref" or a JSON ResourceSpec.
func parseSpec(raw []byte) (*kgw.ResourceSpec, error) {
	if ref, ok := bytes.CutPrefix(raw, []byte("@")); ok {
		if len(ref) == 0 {
			return nil, errors.New("@ needs a resource name")
		}
		return &kgw.ResourceSpec{Ref: string(ref)}, nil
	}
	if _, err := jsonObject(raw); err != nil {
		return nil, fmt.Errorf("want @ref or a JSON spec: %w", err)
	}
	spec := &kgw.ResourceSpec{}
	if err := protojson.Unmarshal(raw, spec); err != nil {
		return nil, fmt.Errorf("spec: want the fields type, config, credentials_ref, credentials_key or ref: %w", err)
	}
	return spec, nil
}

// followEvents prints the events of events (a Stream or Watch), then the
// final execution, and returns errNotCompleted unless it completed. With
// -o json each event is printed as one line {"event": …}.
func followEvents(ctx context.Context, k *clientCmd, cl *kgw.Client, events iter.Seq2[*kgw.Event, error]) error {
	w := k.c.stdout
	var (
		final   *kgw.Execution
		execID  string
		lastSeq int64
	)
	const maxResumes = 5
	for resumes := 0; ; resumes++ {
		var streamErr error
		for ev, err := range events {
			if err != nil {
				streamErr = err
				break
			}
			execID, lastSeq = ev.ExecutionID, ev.Seq
			if k.json() {
				fmt.Fprintf(w, "{\"event\":%s}\n", protoJSON(ev.Proto))
			} else {
				fmt.Fprintln(w, eventLine(ev))
			}
			if ev.Terminal() {
				final = ev.Execution
			}
		}
		if streamErr == nil || final != nil {
			break
		}
		var e *kgw.Error
		// A consumer that fell behind is told to resume from its last seq.
		if errors.As(streamErr, &e) && e.Code == codes.ResourceExhausted && execID != "" && resumes < maxResumes {
			events = cl.Watch(ctx, execID, lastSeq)
			continue
		}
		if execID != "" && ctx.Err() != nil {
			fmt.Fprintf(k.c.stderr, "kgw %s: stopped watching; execution %s continues (kgw executions cancel %s)\n", k.name, execID, execID)
		}
		return streamErr
	}
	if final == nil {
		if execID == "" {
			return fmt.Errorf("the stream ended without events")
		}
		// The stream ended early (e.g. the gateway restarted): fetch the state.
		ex, err := cl.GetExecution(ctx, execID)
		if err != nil {
			return err
		}
		final = ex
	}
	if !k.json() {
		fmt.Fprintln(w)
		printExecution(w, final, false)
	}
	return exitFor(final)
}

// eventLine formats an event as "seq time kind node details".
func eventLine(ev *kgw.Event) string {
	var d string
	switch ev.Kind {
	case kgw.EventExecutionStarted:
		d = fmt.Sprintf("workflow %s version %d", ev.Workflow, ev.Version)
		if ev.Resumed {
			d += " (resumed)"
		}
	case kgw.EventNodeStarted:
		d = fmt.Sprintf("attempt %d", ev.Attempt)
	case kgw.EventNodeLog:
		d = fmt.Sprintf("[%s] %s", ev.Level, ev.Message)
		for _, key := range sortedKeys(ev.Fields) {
			d += " " + key + "=" + compactJSON(ev.Fields[key])
		}
	case kgw.EventNodeRetrying:
		d = fmt.Sprintf("attempt %d failed: %s; retrying in %s", ev.Attempt, errText(ev.Error), ev.Backoff)
	case kgw.EventNodeCompleted:
		d = fmt.Sprintf("attempt %d in %s: %s", ev.Attempt, formatDuration(ev.Duration), clip(compactJSON(ev.Result), 200))
	case kgw.EventNodeFailed:
		d = fmt.Sprintf("attempt %d: %s", ev.Attempt, errText(ev.Error))
	case kgw.EventExecutionCompleted, kgw.EventExecutionFailed, kgw.EventExecutionCancelled, kgw.EventExecutionTimedOut:
		if ex := ev.Execution; ex != nil {
			d = statusText(ex.Status)
			switch e := ex.Error; {
			case e == nil:
			case e.Code == d && e.NodeID == "":
				d += ": " + e.Message
			default:
				d += ": " + errText(e)
			}
		}
	default:
		d = "(an event kind this kgw does not know)"
	}
	return fmt.Sprintf("%4d  %s  %-19s  %-12s  %s", ev.Seq, ev.Time.Local().Format("15:04:05.000"), ev.Kind, orDash(ev.NodeID), d)
}

// errText formats an execution error on one line: "[node] CODE: message".
func errText(e *kgw.ExecutionError) string {
	if e == nil {
		return "-"
	}
	s := e.Code + ": " + e.Message
	if e.NodeID != "" {
		s = "[" + e.NodeID + "] " + s
	}
	return s
}

// statusText is the upper-case status, as in the proto enum.
func statusText(s kgw.Status) string {
	if s == "" {
		return "UNSPECIFIED"
	}
	return strings.ToUpper(string(s))
}

// clip shortens s to n bytes, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// printExecution writes an execution: id, workflow, status, times, the
// per-node table (withNodes), the result as JSON and the error.
func printExecution(w io.Writer, ex *kgw.Execution, withNodes bool) {
	fmt.Fprintf(w, "execution: %s\n", ex.ID)
	fmt.Fprintf(w, "workflow:  %s (version %d)\n", ex.Workflow, ex.Version)
	fmt.Fprintf(w, "status:    %s\n", statusText(ex.Status))
	if withNodes {
		fmt.Fprintf(w, "created:   %s\n", formatTime(ex.CreateTime))
		if ex.IdempotencyKey != "" {
			fmt.Fprintf(w, "idempotency key: %s\n", ex.IdempotencyKey)
		}
	}
	if !ex.StartTime.IsZero() && !ex.EndTime.IsZero() {
		fmt.Fprintf(w, "duration:  %s\n", formatDuration(ex.EndTime.Sub(ex.StartTime)))
	}
	if withNodes && len(ex.Nodes) > 0 {
		fmt.Fprintln(w)
		tw := newTable(w)
		fmt.Fprintln(tw, "NODE\tSTATUS\tATTEMPTS\tDURATION\tERROR")
		for _, n := range ex.Nodes {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", n.NodeID, strings.ToUpper(string(n.Status)), n.Attempts,
				formatDuration(n.Duration), clip(errText(n.Error), 120))
		}
		tw.Flush()
	}
	if len(ex.Result) > 0 {
		fmt.Fprintln(w, "result:")
		fmt.Fprintln(w, indentJSON(ex.Result, "  "))
	}
	if e := ex.Error; e != nil {
		fmt.Fprintf(w, "error:     %s\n", errText(e))
		if e.Traceback != "" {
			fmt.Fprintln(w, "traceback:")
			for _, line := range strings.Split(strings.TrimRight(e.Traceback, "\n"), "\n") {
				fmt.Fprintln(w, "  "+line)
			}
		}
	}
}
