package main

// environment is how every command of kgw reads its KGW_* variables (flag
// defaults, KGW_TOKEN, KGW_MASTER_KEY): os.Getenv, or a map in tests.
type environment func(name string) string

// or returns the value of the variable name, or def when it is unset or
// empty (an empty variable counts as unset everywhere).
func (getenv environment) or(name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}
