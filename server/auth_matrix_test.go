package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kailash-gateway/kgw/access"
	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// wantAllowed is the role × RPC matrix of docs/security.md, written out
// independently of the server's table: for each RPC, the roles besides
// admin that may call it ("*" = every authenticated caller).
var wantAllowed = map[string]string{
	"WorkflowService/RegisterWorkflow": "developer",
	"WorkflowService/GetWorkflow":      "developer operator executor viewer",
	"WorkflowService/ListWorkflows":    "developer operator executor viewer",
	"WorkflowService/DeleteWorkflow":   "developer",

	"ExecutionService/ExecuteWorkflow": "developer executor",
	"ExecutionService/StartExecution":  "developer executor",
	"ExecutionService/StreamExecution": "developer executor",
	"ExecutionService/WatchExecution":  "developer operator executor viewer",
	"ExecutionService/GetExecution":    "developer operator executor viewer",
	"ExecutionService/ListExecutions":  "developer operator executor viewer",
	"ExecutionService/CancelExecution": "operator executor",

	"SecretService/StoreSecret":        "secrets-admin",
	"SecretService/GetSecret":          "secrets-admin developer operator viewer",
	"SecretService/ListSecrets":        "secrets-admin developer operator viewer",
	"SecretService/DeleteSecret":       "secrets-admin",
	"SecretService/UpdateSecretAccess": "secrets-admin",

	"ResourceService/PutResource":    "developer",
	"ResourceService/GetResource":    "developer operator viewer",
	"ResourceService/ListResources":  "developer operator viewer",
	"ResourceService/DeleteResource": "developer",
	"ResourceService/ListPools":      "developer operator viewer",
	"ResourceService/CheckResource":  "developer operator",

	"AccessService/CreateApiKey":      "",
	"AccessService/ListApiKeys":       "",
	"AccessService/RevokeApiKey":      "",
	"AccessService/CreateRoleBinding": "",
	"AccessService/DeleteRoleBinding": "",
	"AccessService/ListRoleBindings":  "",
	"AccessService/WhoAmI":            "*",
}

// kgwMethods returns every RPC of package kgw.v1 from the descriptors.
func kgwMethods(t *testing.T) []protoreflect.MethodDescriptor {
	var out []protoreflect.MethodDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("kgw.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				out = append(out, sd.Methods().Get(j))
			}
		}
		return true
	})
	if len(out) != len(wantAllowed) {
		t.Fatalf("kgw.v1 has %d RPCs, the matrix %d: give every new RPC its row", len(out), len(wantAllowed))
	}
	return out
}

// invoke calls method md on conn with req and returns the status code.
func invoke(ctx context.Context, conn *grpc.ClientConn, md protoreflect.MethodDescriptor, req proto.Message) error {
	full := "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
	out, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return err
	}
	if !md.IsStreamingServer() {
		return conn.Invoke(ctx, full, req, out.New().Interface())
	}
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, full)
	if err != nil {
		return err
	}
	if err := cs.SendMsg(req); err != nil {
		return err
	}
	if err := cs.CloseSend(); err != nil {
		return err
	}
	for {
		if err := cs.RecvMsg(out.New().Interface()); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// TestRoleRPCMatrix calls every RPC as a caller with each single role:
// allowed calls succeed, the others get PERMISSION_DENIED; without a token,
// or with a wrong one, every RPC gets UNAUTHENTICATED.
func TestRoleRPCMatrix(t *testing.T) {
	s := startStack(t, stackOptions{authRequired: true})
	ctx := t.Context()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer upstream.Close()
	m := &matrixRequests{s: s, upstream: upstream.URL}
	s.register(t, &kgwv1.Workflow{Name: "noop", Nodes: []*kgwv1.Node{{Id: "n", Code: "result = {}"}}})

	methods := kgwMethods(t)
	for _, role := range access.Roles {
		conn := s.dialAs(t, s.key(t, role))
		for _, md := range methods {
			method := string(md.Parent().Name()) + "/" + string(md.Name())
			want, ok := wantAllowed[method]
			if !ok {
				t.Fatalf("%s is missing from the matrix", method)
			}
			may := role == access.RoleAdmin || want == "*" || strings.Contains(" "+want+" ", " "+role+" ")
			t.Run(role+"/"+method, func(t *testing.T) {
				err := invoke(ctx, conn, md, m.request(t, method, conn, may))
				switch {
				case may && err != nil:
					t.Errorf("%s as %s: %v, want success", method, role, err)
				case !may && status.Code(err) != codes.PermissionDenied:
					t.Errorf("%s as %s: %v, want PERMISSION_DENIED", method, role, err)
				}
			})
		}
	}

	for _, tc := range []struct {
		name string
		conn *grpc.ClientConn
	}{
		{"no token", s.dial(t)},
		{"wrong key", s.dialAs(t, "kgw_0123456789abcdef_"+strings.Repeat("0", 64))},
		{"garbage", s.dialAs(t, "not-a-token")},
	} {
		for _, md := range methods {
			method := string(md.Parent().Name()) + "/" + string(md.Name())
			err := invoke(ctx, tc.conn, md, m.request(t, method, s.conn, false))
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("%s with %s: %v, want UNAUTHENTICATED", method, tc.name, err)
			}
		}
	}
}

// matrixRequests builds, for TestRoleRPCMatrix, a request of each method
// that succeeds for a caller allowed the method, making what it needs
// (executions, secrets, resources, keys) as the admin of stack s.
type matrixRequests struct {
	s        *stack
	upstream string // base URL of the http_client resources
	seq      atomic.Int64
}

// fresh returns a new name starting with prefix.
func (m *matrixRequests) fresh(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, m.seq.Add(1))
}

// admin is the admin's AccessService client.
func (m *matrixRequests) admin() kgwv1.AccessServiceClient {
	return kgwv1.NewAccessServiceClient(m.s.conn)
}

// adminExecution runs workflow noop as the admin and returns its id.
func (m *matrixRequests) adminExecution(t *testing.T) string {
	r, err := m.s.ex.ExecuteWorkflow(t.Context(), &kgwv1.ExecuteWorkflowRequest{Workflow: "noop"})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetExecution().GetId()
}

// adminSecret stores a new secret as the admin and returns its name.
func (m *matrixRequests) adminSecret(t *testing.T) string {
	name := m.fresh("sec")
	v, _ := structpb.NewStruct(map[string]any{"token": "s3cr3t-matrix"})
	if _, err := m.s.sec.StoreSecret(t.Context(), &kgwv1.StoreSecretRequest{Name: name, Value: v}); err != nil {
		t.Fatal(err)
	}
	return name
}

// httpSpec is an inline http_client spec for the upstream.
func (m *matrixRequests) httpSpec() *kgwv1.ResourceSpec {
	cfg, _ := structpb.NewStruct(map[string]any{"base_url": m.upstream})
	return &kgwv1.ResourceSpec{Type: "http_client", Config: cfg}
}

// adminResource stores a new named resource as the admin and returns its
// name.
func (m *matrixRequests) adminResource(t *testing.T) string {
	name := m.fresh("res")
	if _, err := m.s.res.PutResource(t.Context(), &kgwv1.PutResourceRequest{Name: name, Spec: m.httpSpec()}); err != nil {
		t.Fatal(err)
	}
	return name
}

// request builds a request of method that succeeds for a caller allowed
// it. conn is the caller's; as is whether the caller may call it (things
// it must own are then made through conn).
func (m *matrixRequests) request(t *testing.T, method string, conn *grpc.ClientConn, as bool) proto.Message {
	svc, _, _ := strings.Cut(method, "/")
	var req proto.Message
	switch svc {
	case "WorkflowService":
		req = m.workflowRequest(t, method, conn, as)
	case "ExecutionService":
		req = m.executionRequest(t, method, conn, as)
	case "SecretService":
		req = m.secretRequest(t, method, conn, as)
	case "ResourceService":
		req = m.resourceRequest(t, method, conn, as)
	case "AccessService":
		req = m.accessRequest(t, method, conn, as)
	}
	if req == nil {
		t.Fatalf("no request for %s: add one to the matrix test", method)
	}
	return req
}

// workflowRequest is request for the methods of WorkflowService.
func (m *matrixRequests) workflowRequest(t *testing.T, method string, conn *grpc.ClientConn, as bool) proto.Message {
	switch method {
	case "WorkflowService/RegisterWorkflow":
		return &kgwv1.RegisterWorkflowRequest{Workflow: &kgwv1.Workflow{Name: m.fresh("wf"), Nodes: []*kgwv1.Node{{Id: "n", Code: "result = {}"}}}}
	case "WorkflowService/GetWorkflow":
		return &kgwv1.GetWorkflowRequest{Name: "noop"}
	case "WorkflowService/ListWorkflows":
		return &kgwv1.ListWorkflowsRequest{}
	case "WorkflowService/DeleteWorkflow":
		name := m.fresh("wf")
		c := m.s.wf
		if as {
			c = kgwv1.NewWorkflowServiceClient(conn) // its creator deletes it
		}
		if _, err := c.RegisterWorkflow(t.Context(), &kgwv1.RegisterWorkflowRequest{Workflow: &kgwv1.Workflow{Name: name, Nodes: []*kgwv1.Node{{Id: "n", Code: "result = {}"}}}}); err != nil {
			t.Fatal(err)
		}
		return &kgwv1.DeleteWorkflowRequest{Name: name}
	}
	return nil
}

// executionRequest is request for the methods of ExecutionService.
func (m *matrixRequests) executionRequest(t *testing.T, method string, conn *grpc.ClientConn, as bool) proto.Message {
	switch method {
	case "ExecutionService/ExecuteWorkflow":
		return &kgwv1.ExecuteWorkflowRequest{Workflow: "noop"}
	case "ExecutionService/StartExecution":
		return &kgwv1.StartExecutionRequest{Workflow: "noop"}
	case "ExecutionService/StreamExecution":
		return &kgwv1.StreamExecutionRequest{Workflow: "noop"}
	case "ExecutionService/WatchExecution", "ExecutionService/GetExecution", "ExecutionService/CancelExecution":
		id := m.adminExecution(t)
		if r, err := kgwv1.NewExecutionServiceClient(conn).ExecuteWorkflow(t.Context(), &kgwv1.ExecuteWorkflowRequest{Workflow: "noop"}); err == nil {
			id = r.GetExecution().GetId() // its own, for executors
		}
		switch method {
		case "ExecutionService/WatchExecution":
			return &kgwv1.WatchExecutionRequest{ExecutionId: id}
		case "ExecutionService/GetExecution":
			return &kgwv1.GetExecutionRequest{ExecutionId: id}
		}
		return &kgwv1.CancelExecutionRequest{ExecutionId: id}
	case "ExecutionService/ListExecutions":
		return &kgwv1.ListExecutionsRequest{}
	}
	return nil
}

// secretRequest is request for the methods of SecretService.
func (m *matrixRequests) secretRequest(t *testing.T, method string, conn *grpc.ClientConn, as bool) proto.Message {
	switch method {
	case "SecretService/StoreSecret":
		v, _ := structpb.NewStruct(map[string]any{"token": "s3cr3t-matrix"})
		return &kgwv1.StoreSecretRequest{Name: m.fresh("sec"), Value: v}
	case "SecretService/GetSecret":
		return &kgwv1.GetSecretRequest{Name: m.adminSecret(t)}
	case "SecretService/ListSecrets":
		return &kgwv1.ListSecretsRequest{}
	case "SecretService/DeleteSecret":
		return &kgwv1.DeleteSecretRequest{Name: m.adminSecret(t)}
	case "SecretService/UpdateSecretAccess":
		return &kgwv1.UpdateSecretAccessRequest{Name: m.adminSecret(t), AllowedCallers: []string{"role:executor"}}
	}
	return nil
}

// resourceRequest is request for the methods of ResourceService.
func (m *matrixRequests) resourceRequest(t *testing.T, method string, conn *grpc.ClientConn, as bool) proto.Message {
	switch method {
	case "ResourceService/PutResource":
		return &kgwv1.PutResourceRequest{Name: m.fresh("res"), Spec: m.httpSpec()}
	case "ResourceService/GetResource":
		return &kgwv1.GetResourceRequest{Name: m.adminResource(t)}
	case "ResourceService/ListResources":
		return &kgwv1.ListResourcesRequest{}
	case "ResourceService/DeleteResource":
		name := m.fresh("res")
		c := m.s.res
		if as {
			c = kgwv1.NewResourceServiceClient(conn)
		}
		if _, err := c.PutResource(t.Context(), &kgwv1.PutResourceRequest{Name: name, Spec: m.httpSpec()}); err != nil {
			t.Fatal(err)
		}
		return &kgwv1.DeleteResourceRequest{Name: name}
	case "ResourceService/ListPools":
		return &kgwv1.ListPoolsRequest{}
	case "ResourceService/CheckResource":
		return &kgwv1.CheckResourceRequest{Target: &kgwv1.CheckResourceRequest_Spec{Spec: m.httpSpec()}}
	}
	return nil
}

// accessRequest is request for the methods of AccessService.
func (m *matrixRequests) accessRequest(t *testing.T, method string, conn *grpc.ClientConn, as bool) proto.Message {
	switch method {
	case "AccessService/CreateApiKey":
		return &kgwv1.CreateApiKeyRequest{Name: "k", Roles: []string{"viewer"}}
	case "AccessService/ListApiKeys":
		return &kgwv1.ListApiKeysRequest{}
	case "AccessService/RevokeApiKey":
		r, err := m.admin().CreateApiKey(t.Context(), &kgwv1.CreateApiKeyRequest{Name: "k", Roles: []string{"viewer"}})
		if err != nil {
			t.Fatal(err)
		}
		return &kgwv1.RevokeApiKeyRequest{Id: r.GetApiKey().GetId()}
	case "AccessService/CreateRoleBinding":
		return &kgwv1.CreateRoleBindingRequest{Principal: "spiffe://mesh.test/ns/a/*", Roles: []string{"viewer"}}
	case "AccessService/DeleteRoleBinding":
		r, err := m.admin().CreateRoleBinding(t.Context(), &kgwv1.CreateRoleBindingRequest{Principal: "jwt:x", Roles: []string{"viewer"}})
		if err != nil {
			t.Fatal(err)
		}
		return &kgwv1.DeleteRoleBindingRequest{Id: r.GetRoleBinding().GetId()}
	case "AccessService/ListRoleBindings":
		return &kgwv1.ListRoleBindingsRequest{}
	case "AccessService/WhoAmI":
		return &kgwv1.WhoAmIRequest{}
	}
	return nil
}
