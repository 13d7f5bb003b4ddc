package kgw

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"
	"gopkg.in/yaml.v3"
)

// The shape of a workflow file, for writing. Field order is file order.
type (
	fileWorkflow struct {
		Name           string            `yaml:"name" json:"name"`
		Description    string            `yaml:"description,omitempty" json:"description,omitempty"`
		Timeout        string            `yaml:"timeout,omitempty" json:"timeout,omitempty"`
		Labels         map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
		DisableJournal bool              `yaml:"disable_journal,omitempty" json:"disable_journal,omitempty"`
		Nodes          []fileNode        `yaml:"nodes" json:"nodes"`
		Connections    []fileConnection  `yaml:"connections,omitempty" json:"connections,omitempty"`
	}
	fileNode struct {
		ID                string     `yaml:"id" json:"id"`
		Description       string     `yaml:"description,omitempty" json:"description,omitempty"`
		RequiredResources []string   `yaml:"required_resources,omitempty" json:"required_resources,omitempty"`
		Timeout           string     `yaml:"timeout,omitempty" json:"timeout,omitempty"`
		Retry             *fileRetry `yaml:"retry,omitempty" json:"retry,omitempty"`
		Code              string     `yaml:"code" json:"code"`
	}
	fileRetry struct {
		MaxAttempts    int32   `yaml:"max_attempts,omitempty" json:"max_attempts,omitempty"`
		InitialBackoff string  `yaml:"initial_backoff,omitempty" json:"initial_backoff,omitempty"`
		MaxBackoff     string  `yaml:"max_backoff,omitempty" json:"max_backoff,omitempty"`
		Multiplier     float64 `yaml:"multiplier,omitempty" json:"multiplier,omitempty"`
	}
	fileConnection struct {
		FromNode   string `yaml:"from_node" json:"from_node"`
		FromOutput string `yaml:"from_output,omitempty" json:"from_output,omitempty"`
		ToNode     string `yaml:"to_node" json:"to_node"`
		ToInput    string `yaml:"to_input,omitempty" json:"to_input,omitempty"`
	}
)

func durationString(d *durationpb.Duration) string {
	if d == nil || d.AsDuration() == 0 {
		return ""
	}
	return d.AsDuration().String()
}

// MarshalWorkflow writes wf in the workflow file format ("yaml" or "json"),
// with code inline, so that ParseWorkflow reads back the same definition.
// Output-only fields (version, create_time) are left out.
func MarshalWorkflow(wf *Workflow, format string) ([]byte, error) {
	f := fileWorkflow{
		Name:           wf.GetName(),
		Description:    wf.GetDescription(),
		Timeout:        durationString(wf.GetTimeout()),
		Labels:         wf.GetLabels(),
		DisableJournal: wf.GetDisableJournal(),
		Nodes:          []fileNode{},
	}
	for _, n := range wf.GetNodes() {
		fn := fileNode{
			ID:                n.GetId(),
			Description:       n.GetDescription(),
			RequiredResources: n.GetRequiredResources(),
			Timeout:           durationString(n.GetTimeout()),
			Code:              n.GetCode(),
		}
		if r := n.GetRetry(); r != nil {
			fn.Retry = &fileRetry{
				MaxAttempts:    r.GetMaxAttempts(),
				InitialBackoff: durationString(r.GetInitialBackoff()),
				MaxBackoff:     durationString(r.GetMaxBackoff()),
				Multiplier:     r.GetMultiplier(),
			}
		}
		f.Nodes = append(f.Nodes, fn)
	}
	for _, c := range wf.GetConnections() {
		f.Connections = append(f.Connections, fileConnection{
			FromNode: c.GetFromNode(), FromOutput: c.GetFromOutput(), ToNode: c.GetToNode(), ToInput: c.GetToInput(),
		})
	}
	switch strings.ToLower(format) {
	case "yaml", "yml":
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(f); err != nil {
			return nil, fmt.Errorf("kgw: marshal workflow: %w", err)
		}
		if err := enc.Close(); err != nil {
			return nil, fmt.Errorf("kgw: marshal workflow: %w", err)
		}
		return b.Bytes(), nil
	case "json":
		data, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("kgw: marshal workflow: %w", err)
		}
		return append(data, '\n'), nil
	default:
		return nil, fmt.Errorf("kgw: marshal workflow: unknown format %q (want yaml or json)", format)
	}
}
