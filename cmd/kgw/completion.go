package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
)

// runCompletion prints a shell completion script for bash, zsh or fish:
// the commands, their subcommands (from the same tables dispatch uses, so
// a new subcommand completes without touching this file) and the client
// flags.
func runCompletion(_ context.Context, c *cli, args []string) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(c.stdout, completionHelp)
		return nil
	}
	if len(args) != 1 {
		fmt.Fprint(c.stderr, completionHelp)
		return errUsage
	}
	tree := completionTree()
	switch args[0] {
	case "bash":
		writeBash(c.stdout, tree, false)
	case "zsh":
		writeBash(c.stdout, tree, true)
	case "fish":
		writeFish(c.stdout, tree)
	default:
		fmt.Fprintf(c.stderr, "kgw completion: unknown shell %q: want bash, zsh or fish\n", args[0])
		return errUsage
	}
	return nil
}

const completionHelp = `Usage: kgw completion bash|zsh|fish

Prints a completion script for the shell. Load it with:
  bash:  source <(kgw completion bash)      (or save it in /etc/bash_completion.d/kgw)
  zsh:   source <(kgw completion zsh)
  fish:  kgw completion fish | source       (or save it in ~/.config/fish/completions/kgw.fish)
`

// completionTree maps a command path ("" for the top, "workflow",
// "auth keys") to the words that may follow it.
func completionTree() map[string][]string {
	tree := map[string][]string{}
	for _, cmd := range commands {
		tree[""] = append(tree[""], cmd.name)
	}
	var walk func(path string, g *group)
	walk = func(path string, g *group) {
		for _, s := range g.subs {
			tree[path] = append(tree[path], s.name)
			if sub, ok := nestedGroups[path+" "+s.name]; ok {
				walk(path+" "+s.name, sub)
			}
		}
	}
	for name, g := range topGroups() {
		walk(name, g)
	}
	tree["completion"] = []string{"bash", "zsh", "fish"}
	tree["help"] = append([]string(nil), tree[""]...)
	return tree
}

// topGroups are the commands that have subcommands.
func topGroups() map[string]*group {
	return map[string]*group{
		"workflow": workflowGroup, "executions": executionsGroup, "secrets": secretsGroup,
		"resources": resourcesGroup, "auth": authGroup,
	}
}

// nestedGroups are subcommands that have subcommands of their own.
var nestedGroups = map[string]*group{"auth keys": authKeysGroup, "auth bindings": authBindingsGroup}

// completionFlags are the client flags, completed after a dash.
func completionFlags() (all, withValue []string) {
	for n := range clientValueFlags {
		if len(n) > 1 {
			all = append(all, "--"+n)
			withValue = append(withValue, "--"+n)
		}
	}
	withValue = append(withValue, "-o")
	for n := range clientBoolFlags {
		all = append(all, "--"+n)
	}
	all = append(all, "--help")
	sort.Strings(all)
	sort.Strings(withValue)
	return all, withValue
}

func writeBash(w io.Writer, tree map[string][]string, zsh bool) {
	flags, withValue := completionFlags()
	paths := make([]string, 0, len(tree))
	for p := range tree {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	if zsh {
		fmt.Fprintln(w, "# kgw completion for zsh (through bashcompinit)")
		fmt.Fprintln(w, "autoload -U +X compinit && compinit")
		fmt.Fprintln(w, "autoload -U +X bashcompinit && bashcompinit")
	} else {
		fmt.Fprintln(w, "# kgw completion for bash")
	}
	fmt.Fprintln(w, `_kgw() {
  local cur="${COMP_WORDS[COMP_CWORD]}" path="" w i words
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    case "$w" in`)
	fmt.Fprintf(w, "      %s) ((i++)); continue ;;\n", strings.Join(withValue, "|"))
	fmt.Fprintln(w, `      -*) continue ;;
    esac
    path="${path:+$path }$w"
  done
  case "$path" in`)
	for _, p := range paths {
		fmt.Fprintf(w, "    %q) words=%q ;;\n", p, strings.Join(tree[p], " "))
	}
	fmt.Fprintf(w, `    *) words="" ;;
  esac
  if [[ "$cur" == -* ]]; then
    words=%q
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _kgw kgw
`, strings.Join(flags, " "))
}

func writeFish(w io.Writer, tree map[string][]string) {
	fmt.Fprintln(w, "# kgw completion for fish")
	fmt.Fprintln(w, "complete -c kgw -f")
	fmt.Fprintf(w, "complete -c kgw -n __fish_use_subcommand -a %q\n", strings.Join(tree[""], " "))
	paths := make([]string, 0, len(tree))
	for p := range tree {
		if p != "" {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		words := strings.Fields(p)
		cond := "__fish_seen_subcommand_from " + words[len(words)-1]
		// Stop offering subcommands once one of them was given.
		cond += "; and not __fish_seen_subcommand_from " + strings.Join(tree[p], " ")
		fmt.Fprintf(w, "complete -c kgw -n %q -a %q\n", cond, strings.Join(tree[p], " "))
	}
	_, withValue := completionFlags()
	for _, f := range withValue {
		if strings.HasPrefix(f, "--") {
			fmt.Fprintf(w, "complete -c kgw -l %s -r\n", strings.TrimPrefix(f, "--"))
		}
	}
	for n := range clientBoolFlags {
		fmt.Fprintf(w, "complete -c kgw -l %s\n", n)
	}
	fmt.Fprintln(w, "complete -c kgw -l tls-ca -l tls-cert -l tls-key -F")
}
