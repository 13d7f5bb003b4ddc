package server

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/store"
)

// workflowFromProto converts a validated definition to the domain type.
// Output-only fields (version, create_time) are ignored.
func workflowFromProto(w *kgwv1.Workflow) *store.Workflow {
	out := &store.Workflow{
		Name:           w.GetName(),
		Description:    w.GetDescription(),
		Timeout:        durationFromProto(w.GetTimeout()),
		DisableJournal: w.GetDisableJournal(),
	}
	if len(w.GetLabels()) > 0 {
		out.Labels = make(map[string]string, len(w.GetLabels()))
		for k, v := range w.GetLabels() {
			out.Labels[k] = v
		}
	}
	for _, n := range w.GetNodes() {
		node := store.Node{
			ID:          n.GetId(),
			Code:        n.GetCode(),
			Timeout:     durationFromProto(n.GetTimeout()),
			Description: n.GetDescription(),
		}
		if len(n.GetRequiredResources()) > 0 {
			node.RequiredResources = append([]string(nil), n.GetRequiredResources()...)
		}
		if r := n.GetRetry(); r != nil {
			node.Retry = store.RetryPolicy{
				MaxAttempts:    r.GetMaxAttempts(),
				InitialBackoff: durationFromProto(r.GetInitialBackoff()),
				MaxBackoff:     durationFromProto(r.GetMaxBackoff()),
				Multiplier:     r.GetMultiplier(),
			}
		}
		out.Nodes = append(out.Nodes, node)
	}
	for _, c := range w.GetConnections() {
		out.Connections = append(out.Connections, store.Connection{
			FromNode:   c.GetFromNode(),
			FromOutput: c.GetFromOutput(),
			ToNode:     c.GetToNode(),
			ToInput:    c.GetToInput(),
		})
	}
	return out
}

// workflowToProto converts a stored workflow to its API form. Zero durations
// (the defaults) and a zero retry policy are left unset.
func workflowToProto(w *store.Workflow) *kgwv1.Workflow {
	out := &kgwv1.Workflow{
		Name:           w.Name,
		Version:        w.Version,
		Description:    w.Description,
		Timeout:        durationToProto(w.Timeout),
		CreateTime:     timeToProto(w.CreateTime),
		DisableJournal: w.DisableJournal,
	}
	if len(w.Labels) > 0 {
		out.Labels = make(map[string]string, len(w.Labels))
		for k, v := range w.Labels {
			out.Labels[k] = v
		}
	}
	for _, n := range w.Nodes {
		pn := &kgwv1.Node{
			Id:          n.ID,
			Code:        n.Code,
			Timeout:     durationToProto(n.Timeout),
			Description: n.Description,
		}
		if len(n.RequiredResources) > 0 {
			pn.RequiredResources = append([]string(nil), n.RequiredResources...)
		}
		if n.Retry != (store.RetryPolicy{}) {
			pn.Retry = &kgwv1.RetryPolicy{
				MaxAttempts:    n.Retry.MaxAttempts,
				InitialBackoff: durationToProto(n.Retry.InitialBackoff),
				MaxBackoff:     durationToProto(n.Retry.MaxBackoff),
				Multiplier:     n.Retry.Multiplier,
			}
		}
		out.Nodes = append(out.Nodes, pn)
	}
	for _, c := range w.Connections {
		out.Connections = append(out.Connections, &kgwv1.Connection{
			FromNode:   c.FromNode,
			FromOutput: c.FromOutput,
			ToNode:     c.ToNode,
			ToInput:    c.ToInput,
		})
	}
	return out
}

// workflowSummaryToProto converts a list entry to its API form.
func workflowSummaryToProto(s *store.WorkflowSummary) *kgwv1.WorkflowSummary {
	out := &kgwv1.WorkflowSummary{
		Name:          s.Name,
		LatestVersion: s.LatestVersion,
		Description:   s.Description,
		NodeCount:     int32(s.NodeCount),
		CreateTime:    timeToProto(s.CreateTime),
	}
	if len(s.RequiredResources) > 0 {
		out.RequiredResources = append([]string(nil), s.RequiredResources...)
	}
	if len(s.Labels) > 0 {
		out.Labels = make(map[string]string, len(s.Labels))
		for k, v := range s.Labels {
			out.Labels[k] = v
		}
	}
	return out
}

func durationFromProto(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

func durationToProto(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
