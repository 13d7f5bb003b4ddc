package server

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kailash-gateway/kgw/executor"
	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/secrets"
	"github.com/kailash-gateway/kgw/store"
)

// structToMap converts a request Struct to a JSON-like map; nil stays nil.
func structToMap(s *structpb.Struct) map[string]any {
	if s == nil {
		return nil
	}
	return s.AsMap()
}

// mapToStruct converts a JSON-like map (store values: nil, bool, float64,
// int64, string, []any, map[string]any) to a Struct.
func mapToStruct(m map[string]any) (*structpb.Struct, error) {
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil, fmt.Errorf("convert value to Struct: %w", err)
	}
	return s, nil
}

// executionToProto converts an execution to its API form. result maps each
// completed node to its result (executor.Results).
func executionToProto(x *store.Execution) (*kgwv1.Execution, error) {
	return executionViewToProto(x, kgwv1.ExecutionView_EXECUTION_VIEW_FULL)
}

// executionViewToProto converts an execution to its API form, with the
// node results only in the FULL view.
func executionViewToProto(x *store.Execution, view kgwv1.ExecutionView) (*kgwv1.Execution, error) {
	out := &kgwv1.Execution{
		Id:             x.ID,
		Workflow:       x.Workflow,
		Version:        x.Version,
		Status:         kgwv1.ExecutionStatus(x.Status),
		Error:          execErrorToProto(x.Error),
		CreateTime:     timeToProto(x.CreateTime),
		StartTime:      timeToProto(x.StartTime),
		EndTime:        timeToProto(x.EndTime),
		IdempotencyKey: x.IdempotencyKey,
		Caller:         x.Caller,
		Replica:        x.Owner,
	}
	var results map[string]any
	if view == kgwv1.ExecutionView_EXECUTION_VIEW_FULL {
		results = executor.Results(x)
	}
	if len(results) > 0 {
		out.Result = make(map[string]*structpb.Struct, len(results))
		for id, r := range results {
			m, _ := r.(map[string]any)
			s, err := mapToStruct(m)
			if err != nil {
				return nil, fmt.Errorf("result of node %s: %w", id, err)
			}
			out.Result[id] = s
		}
	}
	for _, n := range x.Nodes {
		pn := &kgwv1.NodeExecution{
			NodeId:    n.NodeID,
			Status:    kgwv1.NodeStatus(n.Status),
			Attempts:  n.Attempts,
			StartTime: timeToProto(n.StartTime),
			EndTime:   timeToProto(n.EndTime),
			Error:     execErrorToProto(n.Error),
		}
		if !n.StartTime.IsZero() && !n.EndTime.IsZero() {
			pn.Duration = durationpb.New(n.EndTime.Sub(n.StartTime))
		}
		out.Nodes = append(out.Nodes, pn)
	}
	return out, nil
}

func execErrorToProto(e *store.ExecError) *kgwv1.ExecutionError {
	if e == nil {
		return nil
	}
	return &kgwv1.ExecutionError{NodeId: e.NodeID, Code: e.Code, Message: e.Message, Traceback: e.Traceback}
}

// eventToProto converts an execution event to its API form.
func eventToProto(ev *store.Event) (*kgwv1.ExecutionEvent, error) {
	out := &kgwv1.ExecutionEvent{ExecutionId: ev.ExecutionID, Seq: ev.Seq, Time: timeToProto(ev.Time)}
	final := func() (*kgwv1.Execution, error) {
		if ev.Execution == nil {
			return nil, nil
		}
		return executionToProto(ev.Execution)
	}
	switch ev.Kind {
	case store.EventExecutionStarted:
		out.Event = &kgwv1.ExecutionEvent_ExecutionStarted{ExecutionStarted: &kgwv1.ExecutionStarted{
			Workflow: ev.Workflow, Version: ev.Version, Resumed: ev.Resumed,
		}}
	case store.EventNodeStarted:
		out.Event = &kgwv1.ExecutionEvent_NodeStarted{NodeStarted: &kgwv1.NodeStarted{NodeId: ev.NodeID, Attempt: ev.Attempt}}
	case store.EventNodeLog:
		l := &kgwv1.NodeLog{NodeId: ev.NodeID, Attempt: ev.Attempt, Level: kgwv1.LogLevel(ev.Level), Message: ev.Message}
		if len(ev.Fields) > 0 {
			f, err := mapToStruct(ev.Fields)
			if err != nil {
				return nil, fmt.Errorf("log fields: %w", err)
			}
			l.Fields = f
		}
		out.Event = &kgwv1.ExecutionEvent_NodeLog{NodeLog: l}
	case store.EventNodeRetrying:
		out.Event = &kgwv1.ExecutionEvent_NodeRetrying{NodeRetrying: &kgwv1.NodeRetrying{
			NodeId: ev.NodeID, Attempt: ev.Attempt, Error: execErrorToProto(ev.Error), Backoff: durationpb.New(ev.Backoff),
		}}
	case store.EventNodeCompleted:
		r, err := mapToStruct(ev.Result)
		if err != nil {
			return nil, fmt.Errorf("node result: %w", err)
		}
		out.Event = &kgwv1.ExecutionEvent_NodeCompleted{NodeCompleted: &kgwv1.NodeCompleted{
			NodeId: ev.NodeID, Attempt: ev.Attempt, Result: r, Duration: durationpb.New(ev.Duration),
		}}
	case store.EventNodeFailed:
		out.Event = &kgwv1.ExecutionEvent_NodeFailed{NodeFailed: &kgwv1.NodeFailed{
			NodeId: ev.NodeID, Attempt: ev.Attempt, Error: execErrorToProto(ev.Error),
		}}
	case store.EventExecutionCompleted:
		x, err := final()
		if err != nil {
			return nil, err
		}
		out.Event = &kgwv1.ExecutionEvent_ExecutionCompleted{ExecutionCompleted: &kgwv1.ExecutionCompleted{Execution: x}}
	case store.EventExecutionFailed:
		x, err := final()
		if err != nil {
			return nil, err
		}
		out.Event = &kgwv1.ExecutionEvent_ExecutionFailed{ExecutionFailed: &kgwv1.ExecutionFailed{Execution: x}}
	case store.EventExecutionCancelled:
		x, err := final()
		if err != nil {
			return nil, err
		}
		out.Event = &kgwv1.ExecutionEvent_ExecutionCancelled{ExecutionCancelled: &kgwv1.ExecutionCancelled{Execution: x}}
	case store.EventExecutionTimedOut:
		x, err := final()
		if err != nil {
			return nil, err
		}
		out.Event = &kgwv1.ExecutionEvent_ExecutionTimedOut{ExecutionTimedOut: &kgwv1.ExecutionTimedOut{Execution: x}}
	default:
		return nil, fmt.Errorf("event %d of execution %s: unknown kind %d", ev.Seq, ev.ExecutionID, ev.Kind)
	}
	return out, nil
}

// specFromProto converts a resource spec to the domain type.
func specFromProto(s *kgwv1.ResourceSpec) store.ResourceSpec {
	return store.ResourceSpec{
		Type:           s.GetType(),
		Config:         structToMap(s.GetConfig()),
		CredentialsRef: s.GetCredentialsRef(),
		CredentialsKey: s.GetCredentialsKey(),
		Ref:            s.GetRef(),
	}
}

// specToProto converts a stored resource spec to its API form.
func specToProto(s store.ResourceSpec) (*kgwv1.ResourceSpec, error) {
	out := &kgwv1.ResourceSpec{
		Type:           s.Type,
		CredentialsRef: s.CredentialsRef,
		CredentialsKey: s.CredentialsKey,
		Ref:            s.Ref,
	}
	if s.Config != nil {
		c, err := mapToStruct(s.Config)
		if err != nil {
			return nil, fmt.Errorf("resource config: %w", err)
		}
		out.Config = c
	}
	return out, nil
}

// resourceToProto converts a named resource to its API form.
func resourceToProto(r *store.Resource) (*kgwv1.Resource, error) {
	spec, err := specToProto(r.Spec)
	if err != nil {
		return nil, fmt.Errorf("resource %s: %w", r.Name, err)
	}
	return &kgwv1.Resource{
		Name:       r.Name,
		Spec:       spec,
		CreateTime: timeToProto(r.CreateTime),
		UpdateTime: timeToProto(r.UpdateTime),
	}, nil
}

// secretToProto converts secret metadata to its API form. Metadata never
// holds a value, so neither does the result.
func secretToProto(m *secrets.Metadata) *kgwv1.Secret {
	return &kgwv1.Secret{
		Name:         m.Name,
		Version:      m.Version,
		Keys:         append([]string(nil), m.Keys...),
		Description:  m.Description,
		CreateTime:   timeToProto(m.CreateTime),
		ExpireTime:   timeToProto(m.ExpireTime),
		AllowedHosts: append([]string(nil), m.AllowedHosts...),
	}
}

// timestampOrZero converts an optional proto timestamp.
func timestampOrZero(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}
