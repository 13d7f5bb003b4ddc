package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	kgw "github.com/kailash-gateway/kgw/clients/go"
)

var secretsGroup = &group{
	name: "secrets",
	summary: "Store, list, show and delete secrets on the gateway (values are write-only:\n" +
		"no command prints them), and rotate the master key of a stopped gateway.",
	subs: []subcommand{
		{"put", "NAME (--from-stdin | --value-file F | --value JSON)", "store the next version of a secret", runSecretsPut},
		{"list", "", "list secrets (metadata only)", runSecretsList},
		{"get", "NAME", "show a secret's metadata (never its value)", runSecretsGet},
		{"delete", "NAME", "delete a secret and all its versions", runSecretsDelete},
		{"set-access", "NAME [--allowed-caller P]...", "replace the callers allowed to use a secret (no new version)", runSecretsSetAccess},
		{"rotate-master-key", "[flags]", "re-wrap every secret's data key under a new master key (offline, against the store)", runRotateMasterKey},
	},
}

const secretsPutSummary = `Stores a JSON object, e.g. {"user": "app", "password": "..."}, as the next version
of secret NAME, encrypted by the gateway. Resources name it with credentials_ref.
The value is never printed, logged or returned by any command.

Prefer --from-stdin or --value-file: --value puts the secret in your shell
history and in the process list of this machine.
  kgw secrets put db_creds --from-stdin < creds.json
  kgw secrets put db_creds --value-file creds.json`

func runSecretsPut(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "secrets put", "NAME (--from-stdin | --value-file F | --value JSON) [flags]", secretsPutSummary)
	var f secretsPutFlags
	k.fs.BoolVar(&f.fromStdin, "from-stdin", false, "read the value (a JSON object) from standard input")
	k.fs.StringVar(&f.valueFile, "value-file", "", "read the value from a JSON (or .yaml/.yml) `file` holding an object (- for standard input)")
	k.fs.StringVar(&f.value, "value", "", "the value as a JSON object (lands in shell history: prefer --from-stdin)")
	k.fs.StringVar(&f.ttl, "ttl", "", "expire this `duration` after storing, e.g. 24h")
	k.fs.StringVar(&f.expire, "expire-time", "", "expire at this RFC 3339 `time`, e.g. 2030-01-02T15:04:05Z")
	k.fs.StringVar(&f.description, "description", "", "what the secret is for")
	k.fs.Var(&f.hosts, "allowed-host", "a `host` pattern the credentials may be sent to, e.g. db.internal or *.example.com (repeatable; none = any host)")
	k.fs.Var(&f.callers, "allowed-caller", callerHelp)
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	sources := 0
	for _, set := range []bool{f.fromStdin, f.valueFile != "", flagGiven(k, "value")} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return k.usageErr("give the value with exactly one of --from-stdin, --value-file or --value")
	}
	opts, err := f.options(k)
	if err != nil {
		return err
	}
	secret, err := f.readValue(c, k)
	if err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		md, err := cl.StoreSecret(ctx, pos[0], secret, opts...)
		if err != nil {
			return err
		}
		if k.json() {
			return k.printProto("secret", md)
		}
		fmt.Fprintf(c.stdout, "stored secret %s version %d (keys: %s)\n", md.GetName(), md.GetVersion(), strings.Join(md.GetKeys(), ", "))
		return nil
	})
}

// secretsPutFlags are the flags of `kgw secrets put` but the client's.
type secretsPutFlags struct {
	value, valueFile, ttl, expire, description string
	fromStdin                                  bool
	hosts, callers                             stringsFlag
}

// options turns the flags other than the value's into the secret's
// options; a bad one is a usage error of k.
func (f *secretsPutFlags) options(k *clientCmd) ([]kgw.SecretOption, error) {
	var opts []kgw.SecretOption
	switch {
	case f.ttl != "" && f.expire != "":
		return nil, k.usageErr("--ttl and --expire-time exclude each other")
	case f.ttl != "":
		d, err := time.ParseDuration(f.ttl)
		if err != nil || d <= 0 {
			return nil, k.usageErr("--ttl %q: want a positive duration such as 24h", f.ttl)
		}
		opts = append(opts, kgw.TTL(d))
	case f.expire != "":
		t, err := time.Parse(time.RFC3339, f.expire)
		if err != nil {
			return nil, k.usageErr("--expire-time %q: want an RFC 3339 time such as 2030-01-02T15:04:05Z", f.expire)
		}
		opts = append(opts, kgw.ExpireTime(t))
	}
	if f.description != "" {
		opts = append(opts, kgw.SecretDescription(f.description))
	}
	if len(f.hosts) > 0 {
		opts = append(opts, kgw.AllowedHosts(f.hosts...))
	}
	if len(f.callers) > 0 {
		opts = append(opts, kgw.AllowedCallers(f.callers...))
	}
	return opts, nil
}

// readValue reads and decodes the secret's value from the one source the
// flags name (standard input, a file, or --value, with a warning on
// c.stderr); an unreadable or malformed value is a usage error of k whose
// message never quotes the value.
func (f *secretsPutFlags) readValue(c *cli, k *clientCmd) (map[string]any, error) {
	var (
		data []byte
		yaml bool
		err  error
	)
	switch {
	case f.fromStdin:
		data, err = c.readInput("-")
	case f.valueFile != "":
		data, err = c.readInput(f.valueFile)
		ext := strings.ToLower(filepath.Ext(f.valueFile))
		yaml = ext == ".yaml" || ext == ".yml"
	default:
		fmt.Fprintln(c.stderr, "kgw secrets put: warning: --value puts the secret in your shell history and the process list; prefer --from-stdin or --value-file")
		data = []byte(f.value)
	}
	if err != nil {
		return nil, k.usageErr("read the value: %v", err)
	}
	secret, err := secretValue(data, yaml)
	if err != nil {
		return nil, k.usageErr("value: %v", err)
	}
	return secret, nil
}

// flagGiven reports whether the flag name was set on the command line.
func flagGiven(k *clientCmd, name string) bool {
	given := false
	k.fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// secretValue decodes a secret value: a JSON (or YAML) object. Errors
// describe the problem without quoting the data.
func secretValue(data []byte, isYAML bool) (map[string]any, error) {
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, errors.New("empty: want a JSON object such as {\"user\": \"app\", \"password\": \"...\"}")
	}
	if isYAML {
		m, err := yamlObject(data)
		if err != nil {
			return nil, errors.New("not a YAML mapping of JSON-compatible values")
		}
		return m, nil
	}
	m, err := jsonObject(data)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func runSecretsList(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "secrets list", "[flags]", "Lists the secrets: metadata only, never values.")
	if _, err := k.parse(args, 0, 0); err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		var all []*kgw.Secret
		for s, err := range cl.ListSecrets(ctx) {
			if err != nil {
				return err
			}
			all = append(all, s)
		}
		if k.json() {
			return printList(k, "secrets", all)
		}
		rows := make([][]string, 0, len(all))
		for _, s := range all {
			rows = append(rows, []string{s.GetName(), itoa(s.GetVersion()), orDash(strings.Join(s.GetKeys(), ",")),
				expiry(s), orDash(strings.Join(s.GetAllowedHosts(), ",")), orDash(s.GetDescription())})
		}
		k.table("NAME\tVERSION\tKEYS\tEXPIRES\tALLOWED HOSTS\tDESCRIPTION", rows)
		return nil
	})
}

func expiry(s *kgw.Secret) string {
	if s.GetExpireTime() == nil {
		return "never"
	}
	return formatTime(s.GetExpireTime().AsTime())
}

func runSecretsGet(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "secrets get", "NAME [flags]", "Shows the metadata of a secret's latest version: keys, never values.")
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		s, err := cl.GetSecret(ctx, pos[0])
		if err != nil {
			return err
		}
		if k.json() {
			return k.printProto("secret", s)
		}
		w := c.stdout
		fmt.Fprintf(w, "name:          %s\n", s.GetName())
		fmt.Fprintf(w, "version:       %d\n", s.GetVersion())
		fmt.Fprintf(w, "keys:          %s\n", orDash(strings.Join(s.GetKeys(), ", ")))
		fmt.Fprintf(w, "description:   %s\n", orDash(s.GetDescription()))
		fmt.Fprintf(w, "created:       %s\n", formatTime(s.GetCreateTime().AsTime()))
		fmt.Fprintf(w, "expires:       %s\n", expiry(s))
		hosts := "any"
		if len(s.GetAllowedHosts()) > 0 {
			hosts = strings.Join(s.GetAllowedHosts(), ", ")
		}
		fmt.Fprintf(w, "allowed hosts: %s\n", hosts)
		fmt.Fprintf(w, "callers:       %s\n", allowedCallers(s.GetAllowedCallers()))
		fmt.Fprintf(w, "creator:       %s\n", orDash(s.GetCreator()))
		return nil
	})
}

func runSecretsDelete(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "secrets delete", "NAME [flags]", "Deletes a secret and all its versions. Resources naming it stop working.")
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		if err := cl.DeleteSecret(ctx, pos[0]); err != nil {
			return err
		}
		if k.json() {
			return k.printDoc(nil)
		}
		fmt.Fprintf(c.stdout, "deleted secret %s\n", pos[0])
		return nil
	})
}

const callerHelp = "a `principal` pattern (spiffe://mesh/ns/payments/*, key:<id>, jwt:<sub>) or role:<name> that may use the secret besides its creator and admins (repeatable; none = creator and admins only)"

// allowedCallers describes an allowed_callers list for people.
func allowedCallers(p []string) string {
	if len(p) == 0 {
		return "creator and admins only"
	}
	return strings.Join(p, ", ")
}

func runSecretsSetAccess(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "secrets set-access", "NAME [--allowed-caller P]... [flags]",
		"Replaces the callers allowed to reference secret NAME (in executions, named\nresources and checks) without storing a new value or version. Without\n--allowed-caller only its creator and admins may use it.")
	var callers stringsFlag
	k.fs.Var(&callers, "allowed-caller", callerHelp)
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		s, err := cl.UpdateSecretAccess(ctx, pos[0], callers...)
		if err != nil {
			return err
		}
		if k.json() {
			return k.printProto("secret", s)
		}
		fmt.Fprintf(c.stdout, "secret %s may be used by: %s\n", s.GetName(), allowedCallers(s.GetAllowedCallers()))
		return nil
	})
}
