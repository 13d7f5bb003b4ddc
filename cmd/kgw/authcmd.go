package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kailash-gateway/kgw/access"
	"github.com/kailash-gateway/kgw/secrets"
)

// authGroup holds the access-control commands. create-key works offline
// against the store (to make the first admin key); the others call the
// gateway's AccessService.
var authGroup = &group{
	name:    "auth",
	summary: "Manage API keys and role bindings; create-key makes a key offline, against the store.",
	subs: []subcommand{
		{"create-key", "--role ROLE --name NAME [flags]", "create an API key directly in the store (offline bootstrap) and print it once", runAuthCreateKey},
	},
}

// runAuthCreateKey creates an API key in the store named by the same flags
// as `kgw serve` (--data-dir, --store, --master-key-file, KGW_MASTER_KEY),
// creating the data dir, store and master key file on first use like
// serve does, and prints the key on stdout, once. It is how the first
// admin key is made: no gateway needs to run, and nobody needs a key yet.
func runAuthCreateKey(ctx context.Context, c *cli, args []string) error {
	f, err := parseCreateKeyFlags(c, args)
	if err != nil {
		return err
	}
	cfg := &serveConfig{MasterKeyFile: f.keyFile}
	if v := c.getenv("KGW_MASTER_KEY"); v != "" {
		k, err := secrets.ParseMasterKey(v)
		if err != nil {
			return fmt.Errorf("KGW_MASTER_KEY: %w", err)
		}
		cfg.MasterKey = &k
	}
	if kind, _, err := storeKind(f.storeDSN); err != nil {
		return err
	} else if kind == "sqlite" {
		if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
	}
	st, _, err := openStore(ctx, f.storeDSN)
	if err != nil {
		return err
	}
	defer st.Close()
	key, err := loadMasterKey(cfg, newLogger(&serveConfig{LogFormat: "text"}, c.stderr))
	if err != nil {
		return err
	}
	mgr, err := secrets.NewManager(ctx, st, key, secrets.Options{})
	if err != nil {
		if errors.Is(err, secrets.ErrWrongMasterKey) {
			return fmt.Errorf("%w: give the master key the gateway uses (KGW_MASTER_KEY or --master-key-file)", err)
		}
		return err
	}
	authn, err := newAuthenticator(ctx, mgr, st, securityFlags{})
	if err != nil {
		return err
	}
	k, secret, err := authn.Keys.Create(ctx, access.CreateRequest{Name: f.name, Roles: f.roles, ExpireTime: f.expire, Creator: "offline"})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "created API key %s (principal key:%s, roles %s); it is printed once, below, and cannot be shown again\n",
		k.ID, k.ID, strings.Join(k.Roles, ", "))
	fmt.Fprintln(c.stdout, secret)
	return nil
}

// createKeyFlags are the checked flags of `kgw auth create-key`, with the
// defaults that depend on --data-dir applied.
type createKeyFlags struct {
	dataDir, storeDSN, keyFile string
	name                       string
	roles                      []string
	expire                     time.Time // zero: never
}

// parseCreateKeyFlags parses and checks the flags of `kgw auth create-key`.
// A bad flag is reported on c.stderr and returns errUsage; -h returns
// flag.ErrHelp.
func parseCreateKeyFlags(c *cli, args []string) (*createKeyFlags, error) {
	fset := flag.NewFlagSet("kgw auth create-key", flag.ContinueOnError)
	fset.SetOutput(c.stderr)
	env := environment(c.getenv).or
	var (
		f        createKeyFlags
		ttl      string
		roleList stringsFlag
	)
	fset.StringVar(&f.dataDir, "data-dir", env("KGW_DATA_DIR", "./kgw-data"), "data directory of the gateway (env KGW_DATA_DIR)")
	fset.StringVar(&f.storeDSN, "store", env("KGW_STORE", ""), "store DSN (env KGW_STORE; default sqlite://<data-dir>/kgw.db)")
	fset.StringVar(&f.keyFile, "master-key-file", env("KGW_MASTER_KEY_FILE", ""), "master key file (env KGW_MASTER_KEY_FILE; default <data-dir>/master.key; KGW_MASTER_KEY wins if set)")
	fset.StringVar(&f.name, "name", "", "name of the key, for people (required)")
	fset.Var(&roleList, "role", "a `role` of the key: "+strings.Join(access.Roles, ", ")+" (repeatable; at least one)")
	fset.StringVar(&ttl, "ttl", "", "expire the key this `duration` from now, e.g. 720h (default: never)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errUsage
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(c.stderr, "kgw auth create-key: unexpected arguments %q\n", fset.Args())
		return nil, errUsage
	}
	if f.name == "" {
		fmt.Fprintln(c.stderr, "kgw auth create-key: --name is required")
		return nil, errUsage
	}
	if err := access.CheckKeyName(f.name); err != nil {
		fmt.Fprintf(c.stderr, "kgw auth create-key: --name: %v\n", err)
		return nil, errUsage
	}
	if err := access.CheckRoles(roleList); err != nil {
		fmt.Fprintf(c.stderr, "kgw auth create-key: --role: %v\n", err)
		return nil, errUsage
	}
	f.roles = roleList
	if ttl != "" {
		d, err := time.ParseDuration(ttl)
		if err != nil || d <= 0 {
			fmt.Fprintf(c.stderr, "kgw auth create-key: --ttl %q: want a positive duration such as 720h\n", ttl)
			return nil, errUsage
		}
		f.expire = time.Now().Add(d)
	}
	if f.storeDSN == "" {
		f.storeDSN = "sqlite://" + filepath.Join(f.dataDir, "kgw.db")
	}
	if f.keyFile == "" {
		f.keyFile = filepath.Join(f.dataDir, "master.key")
	}
	return &f, nil
}
