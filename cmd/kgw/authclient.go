package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	kgw "github.com/kailash-gateway/kgw/clients/go"
)

// The client subcommands of `kgw auth` (authGroup, in authcmd.go, holds the
// offline create-key): they call the gateway's AccessService with the client
// flags (--token, --tls-*).
func init() {
	authGroup.subs = append(authGroup.subs,
		subcommand{"keys", "create|list|revoke", "create, list and revoke API keys on the gateway", authKeysGroup.run},
		subcommand{"bindings", "create|delete|list", "give roles to principals and principal patterns", authBindingsGroup.run},
		subcommand{"whoami", "", "show the caller's principal, roles and authentication method", runAuthWhoAmI},
	)
}

var authKeysGroup = &group{
	name:    "auth keys",
	summary: "Create, list and revoke API keys. A key is shown once, when it is created.",
	subs: []subcommand{
		{"create", "--name NAME --role ROLE... [--ttl D | --expire-time T]", "create an API key and print it (once)", runAuthKeysCreate},
		{"list", "", "list API keys (never the keys themselves)", runAuthKeysList},
		{"revoke", "ID", "revoke an API key", runAuthKeysRevoke},
	},
}

var authBindingsGroup = &group{
	name:    "auth bindings",
	summary: "Give roles to principals (jwt:<sub>, spiffe://…, cert:<CN>, key:<id>) or to\npatterns ending in * (spiffe://mesh.example/ns/payments/*).",
	subs: []subcommand{
		{"create", "PRINCIPAL --role ROLE...", "give roles to a principal or pattern", runAuthBindingsCreate},
		{"delete", "ID", "delete a role binding", runAuthBindingsDelete},
		{"list", "", "list role bindings", runAuthBindingsList},
	},
}

const roleHelp = "a `role`: admin, developer, operator, executor, viewer or secrets-admin (repeatable)"

func runAuthKeysCreate(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "auth keys create", "--name NAME --role ROLE... [--ttl D | --expire-time T] [flags]",
		"Creates an API key and prints it once: the gateway keeps only a keyed hash\nand cannot show it again. Callers send it with --token or KGW_TOKEN.")
	var (
		name, ttl, expire string
		roles             stringsFlag
	)
	k.fs.StringVar(&name, "name", "", "name of the key, for people")
	k.fs.Var(&roles, "role", roleHelp)
	k.fs.StringVar(&ttl, "ttl", "", "expire this `duration` after creation, e.g. 720h")
	k.fs.StringVar(&expire, "expire-time", "", "expire at this RFC 3339 `time`, e.g. 2030-01-02T15:04:05Z")
	if _, err := k.parse(args, 0, 0); err != nil {
		return err
	}
	if name == "" {
		return k.usageErr("missing --name")
	}
	if len(roles) == 0 {
		return k.usageErr("missing --role (at least one)")
	}
	var at time.Time
	switch {
	case ttl != "" && expire != "":
		return k.usageErr("--ttl and --expire-time exclude each other")
	case ttl != "":
		d, err := time.ParseDuration(ttl)
		if err != nil || d <= 0 {
			return k.usageErr("--ttl %q: want a positive duration such as 720h", ttl)
		}
		at = time.Now().Add(d)
	case expire != "":
		t, err := time.Parse(time.RFC3339, expire)
		if err != nil {
			return k.usageErr("--expire-time %q: want an RFC 3339 time such as 2030-01-02T15:04:05Z", expire)
		}
		at = t
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		meta, key, err := cl.CreateAPIKey(ctx, name, roles, at)
		if err != nil {
			return err
		}
		if k.json() {
			return k.printDoc([]docField{{"apiKey", protoJSON(meta)}, {"key", jsonValue(key)}})
		}
		fmt.Fprintf(c.stdout, "created API key %s (name %s, roles %s, expires %s)\n", meta.GetId(), meta.GetName(),
			strings.Join(meta.GetRoles(), ","), keyExpiry(meta))
		fmt.Fprintf(c.stdout, "key: %s\n", key)
		fmt.Fprintln(c.stdout, "store it now: the gateway cannot show it again")
		return nil
	})
}

func keyExpiry(k *kgw.APIKey) string {
	if k.GetExpireTime() == nil {
		return "never"
	}
	return formatTime(k.GetExpireTime().AsTime())
}

func runAuthKeysList(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "auth keys list", "[flags]", "Lists the API keys that are not revoked: metadata only, never the keys.")
	if _, err := k.parse(args, 0, 0); err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		var all []*kgw.APIKey
		for key, err := range cl.ListAPIKeys(ctx) {
			if err != nil {
				return err
			}
			all = append(all, key)
		}
		if k.json() {
			return printList(k, "apiKeys", all)
		}
		rows := make([][]string, 0, len(all))
		for _, key := range all {
			used := "never"
			if key.GetLastUsedTime() != nil {
				used = formatTime(key.GetLastUsedTime().AsTime())
			}
			rows = append(rows, []string{key.GetId(), key.GetName(), strings.Join(key.GetRoles(), ","),
				formatTime(key.GetCreateTime().AsTime()), keyExpiry(key), used, orDash(key.GetCreator())})
		}
		k.table("ID\tNAME\tROLES\tCREATED\tEXPIRES\tLAST USED\tCREATOR", rows)
		return nil
	})
}

func runAuthKeysRevoke(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "auth keys revoke", "ID [flags]", "Revokes an API key (ID is the <id> of kgw_<id>_<secret>, as `kgw auth keys list` shows).")
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		if err := cl.RevokeAPIKey(ctx, pos[0]); err != nil {
			return err
		}
		if k.json() {
			return k.printDoc(nil)
		}
		fmt.Fprintf(c.stdout, "revoked API key %s\n", pos[0])
		return nil
	})
}

func runAuthBindingsCreate(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "auth bindings create", "PRINCIPAL --role ROLE... [flags]",
		"Gives roles to PRINCIPAL: jwt:<sub>, spiffe://…, cert:<CN>, key:<id>, or a pattern\nending in * that matches any suffix, e.g. 'spiffe://mesh.example/ns/payments/*'.")
	var roles stringsFlag
	k.fs.Var(&roles, "role", roleHelp)
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if len(roles) == 0 {
		return k.usageErr("missing --role (at least one)")
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		b, err := cl.CreateRoleBinding(ctx, pos[0], roles...)
		if err != nil {
			return err
		}
		if k.json() {
			return k.printProto("roleBinding", b)
		}
		fmt.Fprintf(c.stdout, "created role binding %s: %s -> %s\n", b.GetId(), b.GetPrincipal(), strings.Join(b.GetRoles(), ","))
		return nil
	})
}

func runAuthBindingsDelete(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "auth bindings delete", "ID [flags]", "Deletes a role binding (ID as `kgw auth bindings list` shows).")
	pos, err := k.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		if err := cl.DeleteRoleBinding(ctx, pos[0]); err != nil {
			return err
		}
		if k.json() {
			return k.printDoc(nil)
		}
		fmt.Fprintf(c.stdout, "deleted role binding %s\n", pos[0])
		return nil
	})
}

func runAuthBindingsList(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "auth bindings list", "[flags]", "Lists the role bindings.")
	if _, err := k.parse(args, 0, 0); err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		var all []*kgw.RoleBinding
		for b, err := range cl.ListRoleBindings(ctx) {
			if err != nil {
				return err
			}
			all = append(all, b)
		}
		if k.json() {
			return printList(k, "roleBindings", all)
		}
		rows := make([][]string, 0, len(all))
		for _, b := range all {
			rows = append(rows, []string{b.GetId(), b.GetPrincipal(), strings.Join(b.GetRoles(), ","),
				formatTime(b.GetCreateTime().AsTime()), orDash(b.GetCreator())})
		}
		k.table("ID\tPRINCIPAL\tROLES\tCREATED\tCREATOR", rows)
		return nil
	})
}

func runAuthWhoAmI(ctx context.Context, c *cli, args []string) error {
	k := newClientCmd(c, "auth whoami", "[flags]", "Shows who the gateway thinks the caller is: principal, roles and how it authenticated.")
	if _, err := k.parse(args, 0, 0); err != nil {
		return err
	}
	return k.withClient(ctx, func(ctx context.Context, cl *kgw.Client) error {
		id, err := cl.WhoAmI(ctx)
		if err != nil {
			return err
		}
		if k.json() {
			return k.printDoc([]docField{{"principal", jsonValue(id.Principal)}, {"roles", jsonValue(id.Roles)}, {"method", jsonValue(id.Method)}})
		}
		fmt.Fprintf(c.stdout, "principal: %s\nroles:     %s\nmethod:    %s\n", id.Principal, orDash(strings.Join(id.Roles, ", ")), id.Method)
		return nil
	})
}

// jsonValue encodes a plain value for printDoc.
func jsonValue(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": "cannot encode: " + err.Error()})
	}
	return b
}
