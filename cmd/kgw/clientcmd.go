package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	kgw "github.com/kailash-gateway/kgw/clients/go"
)

// Exit statuses of the client subcommands (docs/cli.md).
const (
	exitOK           = 0
	exitNotCompleted = 1 // the execution ended FAILED, TIMED_OUT or CANCELLED; or a local failure
	exitUsage        = 2
	exitRPC          = 3
)

// errNotCompleted reports an execution that ended in a state other than
// COMPLETED (exit status 1); the command already printed why.
var errNotCompleted = errors.New("execution did not complete")

// defaultAddr is the gateway a client subcommand talks to without --addr or
// KGW_ADDR: the address `kgw serve` listens on by default.
const defaultAddr = "127.0.0.1:50051"

// A group is a command with subcommands, such as `kgw workflow`.
type group struct {
	name    string
	summary string
	subs    []subcommand
}

// A subcommand is one leaf of a group, such as `kgw workflow register`.
type subcommand struct {
	name    string
	args    string // synopsis of the positional arguments and main flags
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

// run dispatches args[0] to the matching subcommand.
func (g *group) run(ctx context.Context, c *cli, args []string) error {
	args = hoistClientFlags(args)
	if len(args) == 0 {
		g.usage(c.stderr)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		g.usage(c.stdout)
		return nil
	}
	for _, s := range g.subs {
		if s.name == args[0] {
			return s.run(ctx, c, args[1:])
		}
	}
	fmt.Fprintf(c.stderr, "kgw %s: unknown subcommand %q\n\n", g.name, args[0])
	g.usage(c.stderr)
	return errUsage
}

func (g *group) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: kgw %s <subcommand> [flags]\n\n%s\n\nSubcommands:\n", g.name, g.summary)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range g.subs {
		fmt.Fprintf(tw, "  %s %s\t%s\n", s.name, s.args, s.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nRun 'kgw %s <subcommand> --help' for the flags of a subcommand.\n", g.name)
}

// clientFlags are the flags every subcommand that talks to a gateway takes.
type clientFlags struct {
	addr     string
	token    string
	tls      bool
	insecure bool
	tlsFiles kgw.TLSFiles // --tls-ca, --tls-cert, --tls-key
	timeout  time.Duration
	output   string
}

// A clientCmd is one client subcommand being parsed and run: its flag set
// (the global client flags plus its own), its I/O and the parsed globals.
type clientCmd struct {
	c        *cli
	name     string // "workflow register"
	synopsis string // "-f FILE"
	summary  string
	fs       *flag.FlagSet
	flags    clientFlags
	outputs  []string          // accepted -o values; the first is the default
	aliases  map[string]string // short name -> long name, for help
	globals  map[string]bool   // names of the global client flags
	// defTimeout is the default of the global --timeout; a subcommand that
	// defines its own --timeout (run) replaces the global one, and then
	// nothing bounds its calls but the execution itself and Ctrl-C.
	defTimeout time.Duration
	rpcLimit   bool
}

// newClientCmd prepares the flag set of `kgw <name>`. outputs lists the
// accepted --output formats, "text" and "json" when nil.
func newClientCmd(c *cli, name, synopsis, summary string, outputs ...string) *clientCmd {
	if len(outputs) == 0 {
		outputs = []string{"text", "json"}
	}
	k := &clientCmd{
		c: c, name: name, synopsis: synopsis, summary: summary,
		fs:         flag.NewFlagSet("kgw "+name, flag.ContinueOnError),
		outputs:    outputs,
		aliases:    map[string]string{},
		globals:    map[string]bool{},
		defTimeout: 30 * time.Second,
	}
	k.fs.SetOutput(c.stderr)
	k.fs.Usage = func() {} // parse prints the usage: on stdout for --help, a hint on stderr otherwise
	env := environment(c.getenv).or
	k.fs.StringVar(&k.flags.addr, "addr", env("KGW_ADDR", defaultAddr), "gateway address: host:port or a gRPC target such as dns:///kgw.internal:443 (env KGW_ADDR)")
	k.fs.StringVar(&k.flags.token, "token", env("KGW_TOKEN", ""), "bearer token sent with every call (env KGW_TOKEN)")
	k.fs.BoolVar(&k.flags.tls, "tls", false, "connect with TLS (system roots); the default for non-loopback addresses")
	k.fs.BoolVar(&k.flags.insecure, "insecure", false, "connect without TLS; the default for loopback addresses")
	k.fs.StringVar(&k.flags.tlsFiles.CA, "tls-ca", c.getenv("KGW_TLS_CA"), "PEM file of the CA that signed the gateway's certificate, instead of the system roots; implies --tls (env KGW_TLS_CA)")
	k.fs.StringVar(&k.flags.tlsFiles.Cert, "tls-cert", c.getenv("KGW_TLS_CERT"), "PEM file of a client certificate for mTLS, with --tls-key; implies --tls (env KGW_TLS_CERT)")
	k.fs.StringVar(&k.flags.tlsFiles.Key, "tls-key", c.getenv("KGW_TLS_KEY"), "PEM file of the client certificate's private key; implies --tls (env KGW_TLS_KEY)")
	k.fs.StringVar(&k.flags.output, "output", outputs[0], "output format: "+strings.Join(outputs, ", "))
	k.alias("o", "output")
	for _, n := range []string{"addr", "token", "tls", "insecure", "tls-ca", "tls-cert", "tls-key", "output", "o"} {
		k.globals[n] = true
	}
	return k
}

// alias registers -short as another name of the already defined --long.
func (k *clientCmd) alias(short, long string) {
	f := k.fs.Lookup(long)
	k.fs.Var(f.Value, short, f.Usage)
	k.aliases[short] = long
}

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// usage prints the synopsis and the flags, the subcommand's own first.
func (k *clientCmd) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: kgw %s %s\n\n%s\n", k.name, k.synopsis, k.summary)
	var own, global []*flag.Flag
	k.fs.VisitAll(func(f *flag.Flag) {
		if _, isAlias := k.aliases[f.Name]; isAlias {
			return
		}
		if k.globals[f.Name] {
			global = append(global, f)
		} else {
			own = append(own, f)
		}
	})
	short := map[string]string{}
	for s, l := range k.aliases {
		short[l] = s
	}
	print := func(title string, flags []*flag.Flag) {
		if len(flags) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, f := range flags {
			typ, use := flag.UnquoteUsage(f)
			names := "--" + f.Name
			if s, ok := short[f.Name]; ok {
				names = "-" + s + ", " + names
			}
			if typ != "" {
				names += " " + typ
			}
			// The token's default comes from KGW_TOKEN: never print it.
			switch f.DefValue {
			case "", "false", "0", "0s":
			default:
				if f.Name != "token" {
					use += fmt.Sprintf(" (default %q)", f.DefValue)
				}
			}
			fmt.Fprintf(tw, "  %s\t%s\n", names, use)
		}
		tw.Flush()
	}
	print("Flags", own)
	print("Client flags", global)
}

// parse parses args, allowing flags before, between and after the
// positional arguments, and checks that their number is between min and max
// (max < 0: no limit). A mistake is printed and returned as errUsage; -h
// returns flag.ErrHelp.
func (k *clientCmd) parse(args []string, min, max int) ([]string, error) {
	if k.fs.Lookup("timeout") == nil {
		k.fs.DurationVar(&k.flags.timeout, "timeout", k.defTimeout, "deadline of the call (0 = none)")
		k.globals["timeout"] = true
		k.rpcLimit = true
	}
	var pos []string
	for {
		if err := k.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				k.usage(k.c.stdout)
				return nil, err
			}
			// The flag package printed the problem.
			fmt.Fprintf(k.c.stderr, "Run 'kgw %s --help' for usage.\n", k.name)
			return nil, errUsage
		}
		rest := k.fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < min:
		return nil, k.usageErr("missing arguments: want %s", k.synopsis)
	case max >= 0 && len(pos) > max:
		return nil, k.usageErr("unexpected arguments %q", pos[max:])
	}
	ok := false
	for _, o := range k.outputs {
		ok = ok || k.flags.output == o
	}
	if !ok {
		return nil, k.usageErr("--output %q: want one of %s", k.flags.output, strings.Join(k.outputs, ", "))
	}
	tlsFiles := k.flags.tlsFiles != (kgw.TLSFiles{})
	if (k.flags.tls || tlsFiles) && k.flags.insecure {
		return nil, k.usageErr("--insecure excludes --tls, --tls-ca, --tls-cert and --tls-key (or their KGW_TLS_* variables)")
	}
	if (k.flags.tlsFiles.Cert == "") != (k.flags.tlsFiles.Key == "") {
		return nil, k.usageErr("--tls-cert and --tls-key go together")
	}
	if k.flags.timeout < 0 {
		return nil, k.usageErr("--timeout must not be negative")
	}
	return pos, nil
}

// usageErr prints a command-line mistake and returns errUsage.
func (k *clientCmd) usageErr(format string, args ...any) error {
	fmt.Fprintf(k.c.stderr, "kgw %s: %s\nRun 'kgw %s --help' for usage.\n", k.name, fmt.Sprintf(format, args...), k.name)
	return errUsage
}

// dial connects to the gateway named by the client flags.
func (k *clientCmd) dial(ctx context.Context) (*kgw.Client, error) {
	var opts []kgw.Option
	switch {
	case k.flags.tlsFiles != (kgw.TLSFiles{}):
		opts = append(opts, kgw.WithTLSFiles(k.flags.tlsFiles))
	case k.flags.tls:
		opts = append(opts, kgw.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12}))
	case k.flags.insecure:
		opts = append(opts, kgw.WithInsecure())
	}
	if k.flags.token != "" {
		opts = append(opts, kgw.WithToken(k.flags.token))
	}
	return kgw.Dial(ctx, k.flags.addr, opts...)
}

// callContext bounds a unary call with --timeout (when it applies).
func (k *clientCmd) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if !k.rpcLimit || k.flags.timeout == 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, k.flags.timeout)
}

// withClient dials, runs fn with a context bounded by --timeout, and closes
// the connection.
func (k *clientCmd) withClient(ctx context.Context, fn func(ctx context.Context, cl *kgw.Client) error) error {
	cl, err := k.dial(ctx)
	if err != nil {
		fmt.Fprintf(k.c.stderr, "kgw %s: %v\n", k.name, err)
		return errUsage
	}
	defer cl.Close()
	ctx, cancel := k.callContext(ctx)
	defer cancel()
	return fn(ctx, cl)
}

func (k *clientCmd) json() bool { return k.flags.output == "json" }

// printProto writes {"field": <m>} as indented protojson: the shape of the
// RPC response whose only field is field.
func (k *clientCmd) printProto(field string, m proto.Message) error {
	return k.printDoc([]docField{{field, protoJSON(m)}})
}

// printList writes {"field": [<items>]} as indented protojson.
func printList[T proto.Message](k *clientCmd, field string, items []T) error {
	raw := make([]json.RawMessage, len(items))
	for i, it := range items {
		raw[i] = protoJSON(it)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	return k.printDoc([]docField{{field, b}})
}

// A docField is one field of a JSON document printed with printDoc, in order.
type docField struct {
	name  string
	value json.RawMessage
}

func (k *clientCmd) printDoc(fields []docField) error {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		n, _ := json.Marshal(f.name)
		b.Write(n)
		b.WriteByte(':')
		b.Write(f.value)
	}
	b.WriteByte('}')
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return fmt.Errorf("format JSON output: %w", err)
	}
	out.WriteByte('\n')
	_, err := k.c.stdout.Write(out.Bytes())
	return err
}

// protoJSON encodes m with protojson (field names in lowerCamelCase, as
// grpcurl prints them).
func protoJSON(m proto.Message) json.RawMessage {
	b, err := protojson.Marshal(m)
	if err != nil {
		// Only invalid UTF-8 or unknown Any types fail; say so in the output.
		b, _ = json.Marshal(map[string]string{"error": "cannot encode: " + err.Error()})
	}
	return b
}

// newTable returns a writer of aligned, tab-separated columns; Flush it.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// table writes aligned columns.
func (k *clientCmd) table(header string, rows [][]string) {
	tw := newTable(k.c.stdout)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// printRPCError prints a failed call: gRPC code, ErrorInfo reason and
// message, then the field violations one per line. The gateway never puts
// secret values in errors, and neither does this.
func printRPCError(w io.Writer, cmd string, e *kgw.Error) {
	code := rpccode.Code_name[int32(e.Code)]
	if code == "" {
		code = e.Code.String()
	}
	line := "kgw " + cmd + ": " + code
	if e.Reason != "" {
		line += " [" + e.Reason + "]"
	}
	if e.Message != "" {
		line += ": " + e.Message
	}
	fmt.Fprintln(w, line)
	for _, v := range e.Violations {
		fmt.Fprintf(w, "  %s: %s\n", v.Field, v.Description)
	}
	switch e.Code {
	case codes.Unavailable:
		// The client's message names the address and `kgw serve`.
		fmt.Fprintln(w, "  (point kgw at a running gateway with --addr or KGW_ADDR)")
	case codes.DeadlineExceeded:
		fmt.Fprintln(w, "  (the call took longer than --timeout)")
	}
}

// readInput reads a file, or standard input when path is "-".
func (c *cli) readInput(path string) ([]byte, error) {
	if path == "-" {
		if c.stdin == nil {
			return nil, nil
		}
		return io.ReadAll(io.LimitReader(c.stdin, 64<<20))
	}
	return os.ReadFile(path)
}

// formatTime prints t in RFC 3339 (UTC), or "-" when it is zero.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// formatDuration rounds d for humans.
func formatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// compactJSON encodes v on one line with sorted keys.
func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}

// indentJSON encodes v indented by prefix.
func indentJSON(v any, prefix string) string {
	b, err := json.MarshalIndent(v, prefix, "  ")
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return prefix + string(b)
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// itoa formats an integer.
func itoa[T ~int | ~int32 | ~int64](n T) string { return strconv.FormatInt(int64(n), 10) }
