package codec

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// workflowDef is the stored form of a workflow version's definition.
type workflowDef struct {
	Nodes          []nodeDef         `json:"nodes,omitempty"`
	Connections    []connectionDef   `json:"connections,omitempty"`
	Timeout        time.Duration     `json:"timeout,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	DisableJournal bool              `json:"disable_journal,omitempty"`
}

type nodeDef struct {
	ID                string        `json:"id"`
	Code              string        `json:"code,omitempty"`
	RequiredResources []string      `json:"required_resources,omitempty"`
	Timeout           time.Duration `json:"timeout,omitempty"`
	MaxAttempts       int32         `json:"max_attempts,omitempty"`
	InitialBackoff    time.Duration `json:"initial_backoff,omitempty"`
	MaxBackoff        time.Duration `json:"max_backoff,omitempty"`
	Multiplier        float64       `json:"multiplier,omitempty"`
	Description       string        `json:"description,omitempty"`
}

type connectionDef struct {
	FromNode   string `json:"from_node"`
	FromOutput string `json:"from_output,omitempty"`
	ToNode     string `json:"to_node"`
	ToInput    string `json:"to_input,omitempty"`
}

// EncodeWorkflowDef encodes the definition of w (its nodes, connections,
// timeout, labels and journal setting) as JSON. Name, version,
// description and creation time are columns of their own and are not
// included.
func EncodeWorkflowDef(w *store.Workflow) (string, error) {
	d := workflowDef{Timeout: w.Timeout, Labels: w.Labels, DisableJournal: w.DisableJournal}
	for _, n := range w.Nodes {
		d.Nodes = append(d.Nodes, nodeDef{
			ID: n.ID, Code: n.Code, RequiredResources: n.RequiredResources, Timeout: n.Timeout,
			MaxAttempts: n.Retry.MaxAttempts, InitialBackoff: n.Retry.InitialBackoff,
			MaxBackoff: n.Retry.MaxBackoff, Multiplier: n.Retry.Multiplier, Description: n.Description,
		})
	}
	for _, c := range w.Connections {
		d.Connections = append(d.Connections, connectionDef(c))
	}
	return encodeJSON(d)
}

// decodeWorkflowDef fills the definition fields of w from s.
func decodeWorkflowDef(s string, w *store.Workflow) error {
	var d workflowDef
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return fmt.Errorf("decode workflow definition: %w", err)
	}
	w.Timeout, w.Labels, w.DisableJournal = d.Timeout, d.Labels, d.DisableJournal
	w.Nodes, w.Connections = nil, nil
	for _, n := range d.Nodes {
		w.Nodes = append(w.Nodes, store.Node{
			ID: n.ID, Code: n.Code, RequiredResources: n.RequiredResources, Timeout: n.Timeout,
			Retry: store.RetryPolicy{
				MaxAttempts: n.MaxAttempts, InitialBackoff: n.InitialBackoff,
				MaxBackoff: n.MaxBackoff, Multiplier: n.Multiplier,
			},
			Description: n.Description,
		})
	}
	for _, c := range d.Connections {
		w.Connections = append(w.Connections, store.Connection(c))
	}
	return nil
}

// Summarize builds the WorkflowSummary of a stored workflow version: its
// node count and the resources its nodes require, each once, in order of
// first use.
func Summarize(w *store.Workflow) *store.WorkflowSummary {
	s := &store.WorkflowSummary{
		Name: w.Name, LatestVersion: w.Version, Description: w.Description,
		NodeCount: len(w.Nodes), Labels: w.Labels, CreateTime: w.CreateTime,
	}
	seen := map[string]bool{}
	for _, n := range w.Nodes {
		for _, r := range n.RequiredResources {
			if !seen[r] {
				seen[r] = true
				s.RequiredResources = append(s.RequiredResources, r)
			}
		}
	}
	return s
}
