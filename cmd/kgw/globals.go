package main

import "strings"

// clientValueFlags and clientBoolFlags are the client flags every client
// subcommand takes (newClientCmd), by name without dashes.
var (
	clientValueFlags = map[string]bool{"addr": true, "token": true, "tls-ca": true, "tls-cert": true, "tls-key": true, "timeout": true, "output": true, "o": true}
	clientBoolFlags  = map[string]bool{"tls": true, "insecure": true}
)

// hoistClientFlags moves client flags given before a command or subcommand
// name (`kgw --addr h:1 workflow list`, `kgw workflow -o json list`) after
// the rest of the arguments, where the subcommand's flag set parses them;
// before a "--" if there is one, so that they stay flags. Anything else
// before the name (an unknown flag) is left in place for the usual error.
func hoistClientFlags(args []string) []string {
	var lead []string
	i := 0
	for i < len(args) {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case clientBoolFlags[name]:
			lead = append(lead, a)
			i++
		case clientValueFlags[name] && hasValue:
			lead = append(lead, a)
			i++
		case clientValueFlags[name] && i+1 < len(args):
			lead = append(lead, a, args[i+1])
			i += 2
		default:
			return hoisted(lead, args[i:])
		}
	}
	return hoisted(lead, args[i:])
}

func hoisted(lead, rest []string) []string {
	if len(lead) == 0 {
		return rest
	}
	out := make([]string, 0, len(lead)+len(rest))
	for j, a := range rest {
		if a == "--" {
			out = append(out, rest[:j]...)
			out = append(out, lead...)
			return append(out, rest[j:]...)
		}
	}
	out = append(out, rest...)
	return append(out, lead...)
}
