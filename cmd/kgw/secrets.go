package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kailash-gateway/kgw/secrets"
)

// runRotateMasterKey re-wraps every data key in the store from the current
// master key to a new one, then leaves the new key where `kgw serve` will
// find it. It never prints either key.
//
// The new key comes from --new-key-file (read if the file exists, else
// created there). Without it, a new key is written next to the current key
// file as <file>.new and, once the rotation succeeded, renamed over the
// current key file; when the current key came from KGW_MASTER_KEY the new
// key stays in <key file>.new for the operator to install.
func runRotateMasterKey(ctx context.Context, c *cli, args []string) error {
	f, err := parseRotateFlags(c, args)
	if err != nil {
		return err
	}
	oldKey, fromEnv, err := currentMasterKey(environment(c.getenv), f.keyFile)
	if err != nil {
		return err
	}
	kind, target, err := storeKind(f.storeDSN)
	if err != nil {
		return err
	}
	if kind == "sqlite" {
		if _, err := os.Stat(target); err != nil {
			return fmt.Errorf("store %s: %w", target, err)
		}
	}
	st, _, err := openStore(ctx, f.storeDSN)
	if err != nil {
		return err
	}
	defer st.Close()

	newPath, replace := f.newKeyFile, false
	if newPath == "" {
		newPath, replace = f.keyFile+".new", !fromEnv
	}
	newKey, created, err := secrets.LoadOrCreateKeyFile(newPath)
	if err != nil {
		return fmt.Errorf("new master key: %w", err)
	}
	if newKey == oldKey {
		return fmt.Errorf("the key in %s is the current master key: give a different one", newPath)
	}
	if err := secrets.RotateMasterKey(ctx, st, oldKey, newKey); err != nil {
		if created {
			os.Remove(newPath)
		}
		return fmt.Errorf("rotate master key (nothing changed): %w", err)
	}
	if replace {
		if err := os.Rename(newPath, f.keyFile); err != nil {
			fmt.Fprintf(c.stdout, "master key rotated; the new key is in %s, but it could not replace %s (%v): move it there before starting the gateway\n", newPath, f.keyFile, err)
			return nil
		}
		newPath = f.keyFile
	}
	fmt.Fprintf(c.stdout, "master key rotated; the new key is in %s\n", newPath)
	switch {
	case replace:
		fmt.Fprintln(c.stdout, "the previous key no longer opens the secrets; restart every gateway that uses this key file")
	case fromEnv:
		fmt.Fprintf(c.stdout, "set KGW_MASTER_KEY to the contents of %s (or use --master-key-file %s) and restart every gateway\n", newPath, newPath)
	default:
		fmt.Fprintf(c.stdout, "start every gateway with --master-key-file %s (or KGW_MASTER_KEY set to its contents)\n", newPath)
	}
	return nil
}

// rotateFlags are the flags of `kgw secrets rotate-master-key`, with the
// defaults that depend on --data-dir applied.
type rotateFlags struct {
	storeDSN, keyFile, newKeyFile string
}

func parseRotateFlags(c *cli, args []string) (*rotateFlags, error) {
	fset := flag.NewFlagSet("kgw secrets rotate-master-key", flag.ContinueOnError)
	fset.SetOutput(c.stderr)
	env := environment(c.getenv).or
	var dataDir string
	f := &rotateFlags{}
	fset.StringVar(&dataDir, "data-dir", env("KGW_DATA_DIR", "./kgw-data"), "data directory of the gateway (env KGW_DATA_DIR)")
	fset.StringVar(&f.storeDSN, "store", env("KGW_STORE", ""), "store DSN (env KGW_STORE; default sqlite://<data-dir>/kgw.db)")
	fset.StringVar(&f.keyFile, "master-key-file", env("KGW_MASTER_KEY_FILE", ""), "current master key file (env KGW_MASTER_KEY_FILE; default <data-dir>/master.key; KGW_MASTER_KEY wins if set)")
	fset.StringVar(&f.newKeyFile, "new-key-file", "", "file holding the new master key; created with a new random key if missing (default: a new key replaces the current key file)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errUsage
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(c.stderr, "kgw secrets rotate-master-key: unexpected arguments %q\n", fset.Args())
		return nil, errUsage
	}
	if f.storeDSN == "" {
		f.storeDSN = "sqlite://" + filepath.Join(dataDir, "kgw.db")
	}
	if f.keyFile == "" {
		f.keyFile = filepath.Join(dataDir, "master.key")
	}
	return f, nil
}

// currentMasterKey returns the master key the secrets are encrypted
// under: KGW_MASTER_KEY when set (fromEnv), else the key in keyFile, which
// must exist.
func currentMasterKey(env environment, keyFile string) (key secrets.MasterKey, fromEnv bool, err error) {
	if v := env.or("KGW_MASTER_KEY", ""); v != "" {
		k, err := secrets.ParseMasterKey(v)
		if err != nil {
			return key, true, fmt.Errorf("KGW_MASTER_KEY: %w", err)
		}
		return k, true, nil
	}
	if _, err := os.Stat(keyFile); errors.Is(err, fs.ErrNotExist) {
		return key, false, fmt.Errorf("master key file %s does not exist: give the current key with --master-key-file or KGW_MASTER_KEY", keyFile)
	}
	k, _, err := secrets.LoadOrCreateKeyFile(keyFile)
	if err != nil {
		return key, false, fmt.Errorf("read current master key: %w", err)
	}
	return k, false, nil
}
