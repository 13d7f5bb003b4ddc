package executor

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kailash-gateway/kgw/store"
)

// scope builds the inputs of node i from the results of its upstreams
// (DESIGN.md §4). It returns the inputs, what the node received through
// pass-all connections (which flows on to its own pass-all downstreams), or
// a MISSING_OUTPUT error naming both nodes and the key.
//
// Precedence, lowest first: what pass-all upstreams themselves received
// through pass-all connections, the results of pass-all upstreams (nearer
// nodes win), then values bound by named connections. Request parameters
// rank below all of these; the runtime applies them. Returned maps are
// shared and never modified.
func (r *run) scope(i int, results, passed []map[string]any) (inputs, pa map[string]any, xe *store.ExecError) {
	pn := &r.p.nodes[i]
	if len(pn.in) == 0 {
		return nil, nil, nil
	}
	named := 0
	if pn.passAll {
		var only = -1
		n := 0
		for _, e := range pn.in {
			if e.output == "" {
				n++
				only = e.from
			}
		}
		if n == 1 && len(passed[only]) == 0 {
			pa = results[only]
		} else {
			pa = make(map[string]any)
			for _, e := range pn.in {
				if e.output == "" {
					maps.Copy(pa, passed[e.from])
				}
			}
			for _, e := range pn.in {
				if e.output == "" {
					maps.Copy(pa, results[e.from])
				}
			}
		}
		named = len(pn.in) - n
	} else {
		named = len(pn.in)
	}
	if named == 0 {
		return pa, pa, nil
	}
	inputs = make(map[string]any, len(pa)+named)
	maps.Copy(inputs, pa)
	for _, e := range pn.in {
		if e.output == "" {
			continue
		}
		v, ok := results[e.from][e.output]
		if !ok {
			from := r.p.nodes[e.from].def.ID
			return nil, nil, &store.ExecError{
				NodeID: pn.def.ID,
				Code:   CodeMissingOutput,
				Message: fmt.Sprintf("node '%s' input '%s': node '%s' has no output '%s' in its result (keys: %s)",
					pn.def.ID, e.input, from, e.output, keyList(results[e.from])),
			}
		}
		inputs[e.input] = v
	}
	return inputs, pa, nil
}

// keyList lists the keys of m for an error message.
func keyList(m map[string]any) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	const most = 20
	if len(keys) > most {
		return strings.Join(keys[:most], ", ") + ", …"
	}
	return strings.Join(keys, ", ")
}
