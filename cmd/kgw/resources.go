package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	kgw "github.com/kailash-gateway/kgw/clients/go"
)

var resourcesGroup = &group{
	name: "resources",
	summary: "Manage named resources (an operator stores name -> spec once; requests then say\n" +
		"--resource db=@name), list the live connection pools, and check a resource.",
	subs: []subcommand{
		{"put", "NAME (--type T --config JSON | -f SPEC)", "create or replace a named resource", runResourcesPut},
		{"list", "", "list named resources", runResourcesList},
		{"get", "NAME", "show a named resource", runResourcesGet},
		{"delete", "NAME", "delete a named resource; its pools drain and close", runResourcesDelete},
		{"pools", "", "list the live connection pools (no credentials)", runResourcesPools},
		{"check", "NAME", "connect to a named resource and report whether it is healthy", runResourcesCheck},
	},
}

const resourcesPutSummary = `Creates or replaces the named resource NAME. The spec comes from the flags, or
from a JSON or YAML file (-f) with the fields type, config, credentials_ref and
credentials_key; flags given with -f override the file's fields.

Credentials never go in the config: store them with 'kgw secrets put' and name
the secret with --credentials-ref.
  kgw resources put orders_db --type database \
    --config '{"host": "db.internal", "database": "orders"}' --credentials-ref orders_creds`

// credentialKeys may not appear in a resource config: they belong in a secret.
var credentialKeys = []string{"password", "token", "api_key", "dsn", "basic"}

func runResourcesPut(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "resources put", "NAME (--type T --config JSON | -f SPEC) [flags]", resourcesPutSummary)
	var typ, config, credRef, credKey, file string
	k.fs.StringVar(&typ, "type", "", "resource type: database, cache or http_client")
	k.fs.StringVar(&config, "config", "", "config as a JSON object, e.g. '{\"host\": \"localhost\", \"database\": \"app\"}' (docs/resources.md)")
	k.fs.StringVar(&credRef, "credentials-ref", "", "name of the `secret` holding the credentials")
	k.fs.StringVar(&credKey, "credentials-key", "", "the `key` of a multi-key secret to use (http_client)")
	k.fs.StringVar(&file, "file", "", "spec `file` (.json, .yaml or .yml; - for standard input)")
	k.alias("f", "file")
	var callers stringsFlag
	k.fs.Var(&callers, "allowed-caller", "a `principal` pattern or role:<name> that may use the resource besides its creator and admins (repeatable; none = creator and admins only)")
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	spec := &kgw.ResourceSpec{}
	if file != "" {
		data, err := c.readInput(file)
		if err != nil {
			return k.usageErr("-f: %v", err)
		}
		var m map[string]any
		ext := strings.ToLower(filepath.Ext(file))
		if ext == ".yaml" || ext == ".yml" {
			m, err = yamlObject(data)
		} else {
			m, err = jsonObject(data)
		}
		if err != nil {
			return k.usageErr("-f %s: %v", file, err)
		}
		b, _ := json.Marshal(m)
		if err := protojson.Unmarshal(b, spec); err != nil {
			return k.usageErr("-f %s: want the fields type, config, credentials_ref, credentials_key: %v", file, err)
		}
	}
	if typ != "" {
		spec.Type = typ
	}
	if config != "" {
		m, err := jsonObject([]byte(config))
		if err != nil {
			return k.usageErr("--config: %v", err)
		}
		s, err := structpb.NewStruct(m)
		if err != nil {
			return k.usageErr("--config: %v", err)
		}
		spec.Config = s
	}
	if credRef != "" {
		spec.CredentialsRef = credRef
	}
	if credKey != "" {
		spec.CredentialsKey = credKey
	}
	if spec.GetType() == "" && spec.GetRef() == "" {
		return k.usageErr("missing --type (database, cache or http_client) or -f SPEC")
	}
	for _, key := range credentialKeys {
		if _, ok := spec.GetConfig().GetFields()[key]; ok {
			return k.usageErr("config key %q is a credential: store it with 'kgw secrets put' and name the secret with --credentials-ref", key)
		}
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		r, err := cl.PutResource(ctx, pos[0], kgw.Raw(spec), callers...)
		if err != nil {
			return err
		}
		if k.json() {
			return k.printProto("resource", r)
		}
		fmt.Fprintf(c.stdout, "stored resource %s (%s)\n", r.GetName(), specSummary(r.GetSpec()))
		return nil
	})
}

// specSummary describes a spec on one line: type, config, secret.
func specSummary(s *kgw.ResourceSpec) string {
	if s.GetRef() != "" {
		return "ref " + s.GetRef()
	}
	out := s.GetType()
	if s.GetConfig() != nil {
		out += " " + compactJSON(s.GetConfig().AsMap())
	}
	if s.GetCredentialsRef() != "" {
		out += " credentials " + s.GetCredentialsRef()
		if s.GetCredentialsKey() != "" {
			out += "[" + s.GetCredentialsKey() + "]"
		}
	}
	return out
}

func runResourcesList(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "resources list", "[flags]", "Lists the named resources.")
	if _, err := k.parse(args, 0, 0); err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		var all []*kgw.NamedResource
		for r, err := range cl.ListResources(ctx) {
			if err != nil {
				return err
			}
			all = append(all, r)
		}
		if k.json() {
			return printList(k, "resources", all)
		}
		rows := make([][]string, 0, len(all))
		for _, r := range all {
			s := r.GetSpec()
			cfg := "-"
			if s.GetConfig() != nil {
				cfg = clip(compactJSON(s.GetConfig().AsMap()), 100)
			}
			typ := s.GetType()
			if s.GetRef() != "" {
				typ = "ref " + s.GetRef()
			}
			rows = append(rows, []string{r.GetName(), typ, orDash(s.GetCredentialsRef()), cfg,
				formatTime(r.GetUpdateTime().AsTime())})
		}
		k.table("NAME\tTYPE\tCREDENTIALS\tCONFIG\tUPDATED", rows)
		return nil
	})
}

func runResourcesGet(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "resources get", "NAME [flags]", "Shows a named resource.")
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		r, err := cl.GetResource(ctx, pos[0])
		if err != nil {
			return err
		}
		if k.json() {
			return k.printProto("resource", r)
		}
		s, w := r.GetSpec(), c.stdout
		fmt.Fprintf(w, "name:            %s\n", r.GetName())
		if s.GetRef() != "" {
			fmt.Fprintf(w, "ref:             %s\n", s.GetRef())
		}
		fmt.Fprintf(w, "type:            %s\n", orDash(s.GetType()))
		fmt.Fprintf(w, "credentials ref: %s\n", orDash(s.GetCredentialsRef()))
		if s.GetCredentialsKey() != "" {
			fmt.Fprintf(w, "credentials key: %s\n", s.GetCredentialsKey())
		}
		fmt.Fprintf(w, "created:         %s\n", formatTime(r.GetCreateTime().AsTime()))
		fmt.Fprintf(w, "updated:         %s\n", formatTime(r.GetUpdateTime().AsTime()))
		fmt.Fprintln(w, "config:")
		fmt.Fprintln(w, indentJSON(s.GetConfig().AsMap(), "  "))
		return nil
	})
}

func runResourcesDelete(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "resources delete", "NAME [flags]", "Deletes a named resource; its pools drain and close.")
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		if err := cl.DeleteResource(ctx, pos[0]); err != nil {
			return err
		}
		if k.json() {
			return k.printDoc(nil)
		}
		fmt.Fprintf(c.stdout, "deleted resource %s\n", pos[0])
		return nil
	})
}

func runResourcesPools(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "resources pools", "[flags]",
		"Lists the live connection pools: target (no credentials), secret version, size,\nidle and in-use connections, acquires, total acquire wait and errors.")
	if _, err := k.parse(args, 0, 0); err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		var all []*kgw.Pool
		for p, err := range cl.ListPools(ctx) {
			if err != nil {
				return err
			}
			all = append(all, p)
		}
		if k.json() {
			return printList(k, "pools", all)
		}
		rows := make([][]string, 0, len(all))
		for _, p := range all {
			secret := "-"
			if p.GetSecretName() != "" {
				secret = fmt.Sprintf("%s@%d", p.GetSecretName(), p.GetSecretVersion())
			}
			state := "open"
			if p.GetDraining() {
				state = "draining"
			}
			rows = append(rows, []string{
				clip(p.GetKey(), 12), p.GetType(), p.GetTarget(), secret, state,
				itoa(p.GetSize()), itoa(p.GetIdle()), itoa(p.GetInUse()), itoa(p.GetMaxSize()),
				itoa(p.GetAcquireCount()), formatDuration(p.GetAcquireWait().AsDuration()),
				itoa(p.GetErrorCount()), orDash(clip(p.GetLastError(), 60)),
			})
		}
		k.table("KEY\tTYPE\tTARGET\tSECRET\tSTATE\tSIZE\tIDLE\tIN USE\tMAX\tACQUIRES\tWAIT\tERRORS\tLAST ERROR", rows)
		return nil
	})
}

func runResourcesCheck(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "resources check", "NAME [flags]",
		"Connects to the named resource and reports whether it is healthy.\nExit status: 0 healthy; 1 unhealthy; 2 usage error; 3 RPC error.")
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		res, err := cl.CheckResource(ctx, kgw.Ref(pos[0]))
		if err != nil {
			return err
		}
		if k.json() {
			b, _ := json.Marshal(res.Healthy)
			m, _ := json.Marshal(res.Message)
			l, _ := json.Marshal(fmt.Sprintf("%.9fs", res.Latency.Seconds()))
			if err := k.printDoc([]docField{{"healthy", b}, {"message", m}, {"latency", l}}); err != nil {
				return err
			}
		} else if res.Healthy {
			fmt.Fprintf(c.stdout, "%s: healthy (%s) %s\n", pos[0], formatDuration(res.Latency), res.Message)
		} else {
			fmt.Fprintf(c.stdout, "%s: unhealthy: %s\n", pos[0], res.Message)
		}
		if !res.Healthy {
			return errNotCompleted
		}
		return nil
	})
}
