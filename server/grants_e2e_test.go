package server_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kailash-gateway/kgw/access"
	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/server"
	"github.com/kailash-gateway/kgw/store"
)

// TestSecretGrantsEndToEnd: a caller without a grant on a secret cannot
// make the gateway send it anywhere, directly, through a named resource or
// through CheckResource — the loopback upstream sees no credential — and
// gets the same PERMISSION_DENIED message as for a secret that does not
// exist. With a grant it works. No key, token or secret value appears in
// the logs, the store's files or any error message.
func TestSecretGrantsEndToEnd(t *testing.T) {
	const token = "tok-GRANT-never-shown-7f3a"
	rec := &headerRecorder{}
	upstream := httptest.NewServer(rec)
	defer upstream.Close()

	logs := &lockedBuffer{}
	s := startStack(t, stackOptions{authRequired: true, logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx := t.Context()
	if _, err := s.sec.StoreSecret(ctx, &kgwv1.StoreSecretRequest{Name: "api_token", Value: params(t, map[string]any{"token": token})}); err != nil {
		t.Fatal(err)
	}
	s.register(t, &kgwv1.Workflow{Name: "call", Nodes: []*kgwv1.Node{{Id: "n", RequiredResources: []string{"api"},
		Code: "r = get_resource(\"api\").get(\"/x\")\nresult = {\"status\": r.status}"}}})
	inline := func(secret string) map[string]*kgwv1.ResourceSpec {
		return map[string]*kgwv1.ResourceSpec{"api": {Type: "http_client", CredentialsRef: secret,
			Config: params(t, map[string]any{"base_url": upstream.URL})}}
	}

	execKey := s.key(t, access.RoleExecutor)
	execID := "key:" + strings.Split(execKey, "_")[1]
	devKey := s.key(t, access.RoleDeveloper, access.RoleOperator)
	keys := []string{execKey, devKey}
	ex := kgwv1.NewExecutionServiceClient(s.dialAs(t, execKey))
	devConn := s.dialAs(t, devKey)
	devRes := kgwv1.NewResourceServiceClient(devConn)

	var errs []string
	deny := func(what string, err error) string {
		t.Helper()
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s: %v, want PERMISSION_DENIED", what, err)
		}
		errs = append(errs, err.Error())
		return status.Convert(err).Message()
	}

	checkDeniedWithoutGrants(t, s, rec, ex, devRes, inline, deny)
	byRef := map[string]*kgwv1.ResourceSpec{"api": {Ref: "api_res"}}

	// Grant the secret to the executor's key: the call goes out with the
	// credential.
	up, err := s.sec.UpdateSecretAccess(ctx, &kgwv1.UpdateSecretAccessRequest{Name: "api_token", AllowedCallers: []string{execID}})
	if err != nil {
		t.Fatal(err)
	}
	if got := up.GetSecret().GetAllowedCallers(); len(got) != 1 || got[0] != execID {
		t.Errorf("UpdateSecretAccess allowed_callers = %v", got)
	}
	x, err := ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "call", Resources: inline("api_token")})
	if err != nil || x.GetExecution().GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("execute with a granted secret: %v %v", x, err)
	}
	if x.GetExecution().GetCaller() != execID {
		t.Errorf("Execution.caller = %q, want %q", x.GetExecution().GetCaller(), execID)
	}
	if got := rec.saw(); len(got) != 1 || got[0] != "Bearer "+token {
		t.Fatalf("upstream saw %d calls, want 1 with the credential", len(got))
	}
	// Still no use of the named resource without a grant on it; with
	// role:executor on it, it works.
	_, err = ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "call", Resources: byRef})
	deny("execute with an ungranted named resource after the secret's grant", err)
	if _, err := s.res.PutResource(ctx, &kgwv1.PutResourceRequest{Name: "api_res", Spec: inline("api_token")["api"], AllowedCallers: []string{"role:executor"}}); err != nil {
		t.Fatal(err)
	}
	if x, err := ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "call", Resources: byRef}); err != nil || x.GetExecution().GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("execute with a granted named resource: %v %v", x, err)
	}

	checkOwnExecutions(t, s, ex, devConn, execID, x.GetExecution().GetId())

	needles := []string{token}
	for _, k := range keys {
		needles = append(needles, k, k[len(k)-64:])
	}
	checkAuditAndLeaks(t, logs.String(), errs, s.storePath, execID, needles)
}

// headerRecorder is an HTTP handler that records the Authorization header
// of each request.
type headerRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (h *headerRecorder) ServeHTTP(_ http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.seen = append(h.seen, r.Header.Get("Authorization"))
	h.mu.Unlock()
}

// saw returns the Authorization headers recorded so far.
func (h *headerRecorder) saw() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.seen...)
}

// checkDeniedWithoutGrants: before any grant, the executor (ex) cannot
// use the secret api_token inline, with the message a missing secret
// gets, nor the named resource api_res over it, which the developer
// (devRes) can neither store nor check; the admin stores it. The upstream
// (rec) sees no call.
func checkDeniedWithoutGrants(t *testing.T, s *stack, rec *headerRecorder, ex kgwv1.ExecutionServiceClient, devRes kgwv1.ResourceServiceClient,
	inline func(secret string) map[string]*kgwv1.ResourceSpec, deny func(what string, err error) string) {
	t.Helper()
	ctx := t.Context()
	// Inline spec: denied, with the message of a secret that does not exist.
	_, err := ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "call", Resources: inline("api_token")})
	msgExists := deny("execute with an ungranted secret", err)
	_, err = ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "call", Resources: inline("no_such_secret")})
	msgMissing := deny("execute with a missing secret", err)
	if strings.ReplaceAll(msgExists, "api_token", "X") != strings.ReplaceAll(msgMissing, "no_such_secret", "X") {
		t.Errorf("messages differ for an existing and a missing secret:\n%q\n%q", msgExists, msgMissing)
	}
	_, err = ex.StartExecution(ctx, &kgwv1.StartExecutionRequest{Workflow: "call", Resources: inline("api_token")})
	deny("start with an ungranted secret", err)

	// Indirection: a named resource over the secret needs a grant on the
	// secret to store, and a grant on the resource to use.
	_, err = devRes.PutResource(ctx, &kgwv1.PutResourceRequest{Name: "api_res", Spec: inline("api_token")["api"]})
	deny("developer storing a named resource with an ungranted secret", err)
	_, err = devRes.CheckResource(ctx, &kgwv1.CheckResourceRequest{Target: &kgwv1.CheckResourceRequest_Spec{Spec: inline("api_token")["api"]}})
	deny("CheckResource with an ungranted secret", err)
	if _, err := s.res.PutResource(ctx, &kgwv1.PutResourceRequest{Name: "api_res", Spec: inline("api_token")["api"]}); err != nil {
		t.Fatal(err)
	}
	byRef := map[string]*kgwv1.ResourceSpec{"api": {Ref: "api_res"}}
	_, err = ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "call", Resources: byRef})
	deny("execute with an ungranted named resource", err)
	_, err = devRes.CheckResource(ctx, &kgwv1.CheckResourceRequest{Target: &kgwv1.CheckResourceRequest_Name{Name: "api_res"}})
	deny("CheckResource of an ungranted named resource", err)
	if got := rec.saw(); len(got) != 0 {
		t.Fatalf("the upstream was called %d times (%q) before any grant", len(got), got)
	}
}

// checkOwnExecutions: the executor (ex, principal execID, whose latest
// execution is mine) sees and cancels only its own executions, its
// idempotency keys are its own, and an operator (devConn) lists by caller.
func checkOwnExecutions(t *testing.T, s *stack, ex kgwv1.ExecutionServiceClient, devConn *grpc.ClientConn, execID, mine string) {
	t.Helper()
	ctx := t.Context()
	// Executors see only their own executions.
	other := kgwv1.NewExecutionServiceClient(s.dialAs(t, s.key(t, access.RoleExecutor)))
	theirs, err := other.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "noop_missing"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("execute unknown workflow: %v", err)
	}
	_ = theirs
	s.register(t, &kgwv1.Workflow{Name: "noop", Nodes: []*kgwv1.Node{{Id: "n", Code: "result = {}"}}})
	ox, err := other.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "noop", IdempotencyKey: "same"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ex.GetExecution(ctx, &kgwv1.GetExecutionRequest{ExecutionId: ox.GetExecution().GetId()}); status.Code(err) != codes.NotFound {
		t.Errorf("executor reading another caller's execution: %v, want NOT_FOUND", err)
	}
	if _, err := ex.CancelExecution(ctx, &kgwv1.CancelExecutionRequest{ExecutionId: ox.GetExecution().GetId()}); status.Code(err) != codes.NotFound {
		t.Errorf("executor cancelling another caller's execution: %v, want NOT_FOUND", err)
	}
	list, err := ex.ListExecutions(ctx, &kgwv1.ListExecutionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list.GetExecutions() {
		if e.GetCaller() != execID {
			t.Errorf("executor's ListExecutions shows %s of %s", e.GetId(), e.GetCaller())
		}
	}
	if len(list.GetExecutions()) != 2 || list.GetExecutions()[1].GetId() != mine && list.GetExecutions()[0].GetId() != mine {
		t.Errorf("executor's ListExecutions = %d executions, want its 2", len(list.GetExecutions()))
	}
	// Idempotency keys are per caller: the same key runs anew for another.
	mx, err := ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "noop", IdempotencyKey: "same"})
	if err != nil || mx.GetExecution().GetId() == ox.GetExecution().GetId() {
		t.Errorf("same idempotency key, other caller: %v, %v; want a new execution", mx.GetExecution().GetId(), err)
	}
	// An operator lists by caller.
	byCaller, err := kgwv1.NewExecutionServiceClient(devConn).ListExecutions(ctx, &kgwv1.ListExecutionsRequest{Caller: execID})
	if err != nil || len(byCaller.GetExecutions()) != 3 {
		t.Errorf("ListExecutions(caller) = %d, %v; want 3", len(byCaller.GetExecutions()), err)
	}

}

// checkAuditAndLeaks: the logs out hold the audit lines of denials and of
// secret store, use and access change, naming execID; no needle (secret
// value, API key or key secret) is in the logs, the store files next to
// storePath or the error messages errs.
func checkAuditAndLeaks(t *testing.T, out string, errs []string, storePath, execID string, needles []string) {
	t.Helper()
	// Audit: denials, secret store and use are logged, with principals.
	for _, want := range []string{`"msg":"audit: permission denied"`, `"msg":"audit: secret stored"`, `"msg":"audit: secret use"`, `"msg":"audit: secret access changed"`, execID} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	// Grep: no secret value, key or key secret in logs, errors or store
	// files.
	var files []byte
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(storePath), "*"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err == nil {
			files = append(files, b...)
		}
	}
	if len(files) == 0 {
		t.Fatalf("read no store files next to %s", storePath)
	}
	for _, n := range needles {
		if strings.Contains(out, n) {
			t.Errorf("logs contain a secret value or key")
		}
		if bytes.Contains(files, []byte(n)) {
			t.Errorf("store files contain a secret value or key")
		}
		for _, e := range errs {
			if strings.Contains(e, n) {
				t.Errorf("an error message contains a secret value or key")
			}
		}
	}
}

// TestMaxExecutionsPerCaller: a caller over --max-executions-per-caller
// gets RESOURCE_EXHAUSTED; another caller is not affected.
func TestMaxExecutionsPerCaller(t *testing.T) {
	s := startStack(t, stackOptions{authRequired: true, maxPerCaller: 1})
	ctx := t.Context()
	s.register(t, &kgwv1.Workflow{Name: "slow", Nodes: []*kgwv1.Node{{Id: "n", Code: "time.sleep(1)\nresult = {}"}}})
	a := kgwv1.NewExecutionServiceClient(s.dialAs(t, s.key(t, access.RoleExecutor)))
	b := kgwv1.NewExecutionServiceClient(s.dialAs(t, s.key(t, access.RoleExecutor)))
	if _, err := a.StartExecution(ctx, &kgwv1.StartExecutionRequest{Workflow: "slow"}); err != nil {
		t.Fatal(err)
	}
	_, err := a.StartExecution(ctx, &kgwv1.StartExecutionRequest{Workflow: "slow"})
	if code, info, _ := details(t, err); code != codes.ResourceExhausted || info.GetReason() != "CALLER_LIMIT" {
		t.Errorf("second execution of the same caller: %v, want RESOURCE_EXHAUSTED / CALLER_LIMIT", err)
	}
	if _, err := b.StartExecution(ctx, &kgwv1.StartExecutionRequest{Workflow: "slow"}); err != nil {
		t.Errorf("another caller: %v, want it started", err)
	}
}

// TestAuthorizeResume: the check run before a claimed execution resumes
// follows the caller's grants and key as they are at resume time.
func TestAuthorizeResume(t *testing.T) {
	s := startStack(t, stackOptions{authRequired: true})
	ctx := t.Context()
	if _, err := s.sec.StoreSecret(ctx, &kgwv1.StoreSecretRequest{Name: "db", Value: params(t, map[string]any{"password": "pw-resume"}),
		AllowedCallers: []string{"role:executor"}}); err != nil {
		t.Fatal(err)
	}
	key := s.key(t, access.RoleExecutor)
	caller := "key:" + strings.Split(key, "_")[1]
	check := server.AuthorizeResume(s.st, s.auth, nil)
	specs := map[string]store.ResourceSpec{"db": {Type: "database", CredentialsRef: "db"}}
	if err := check(ctx, caller, specs); err != nil {
		t.Fatalf("granted caller: %v", err)
	}
	if err := check(ctx, "jwt:stranger", specs); err == nil {
		t.Errorf("a caller without the role or a grant may resume")
	}
	if err := check(ctx, caller, map[string]store.ResourceSpec{"db": {Type: "database", CredentialsRef: "gone"}}); err == nil {
		t.Errorf("a missing secret may be resumed with")
	}
	if err := s.auth.Keys.Revoke(ctx, strings.Split(key, "_")[1]); err != nil {
		t.Fatal(err)
	}
	if err := check(ctx, caller, specs); err == nil {
		t.Errorf("a revoked key's execution may resume with a role-granted secret")
	}
}

// TestWorkflowGrants: a workflow's allowed_callers decides who may execute
// it; a new version or a delete needs its creator or an admin.
func TestWorkflowGrants(t *testing.T) {
	s := startStack(t, stackOptions{authRequired: true})
	ctx := t.Context()
	keyA, keyB := s.key(t, access.RoleExecutor), s.key(t, access.RoleExecutor)
	idA := "key:" + strings.Split(keyA, "_")[1]
	devKey, otherDev := s.key(t, access.RoleDeveloper), s.key(t, access.RoleDeveloper)
	dev := kgwv1.NewWorkflowServiceClient(s.dialAs(t, devKey))
	wf := func(callers ...string) *kgwv1.Workflow {
		return &kgwv1.Workflow{Name: "private", AllowedCallers: callers, Nodes: []*kgwv1.Node{{Id: "n", Code: "result = {}"}}}
	}
	reg, err := dev.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: wf(idA)})
	if err != nil {
		t.Fatal(err)
	}
	if reg.GetWorkflow().GetCreator() != "key:"+strings.Split(devKey, "_")[1] || len(reg.GetWorkflow().GetAllowedCallers()) != 1 {
		t.Errorf("registered workflow creator %q callers %v", reg.GetWorkflow().GetCreator(), reg.GetWorkflow().GetAllowedCallers())
	}
	run := func(key string) error {
		_, err := kgwv1.NewExecutionServiceClient(s.dialAs(t, key)).ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "private"})
		return err
	}
	if err := run(keyA); err != nil {
		t.Errorf("listed executor: %v", err)
	}
	if err := run(keyB); status.Code(err) != codes.PermissionDenied {
		t.Errorf("unlisted executor: %v, want PERMISSION_DENIED", err)
	}
	other := kgwv1.NewWorkflowServiceClient(s.dialAs(t, otherDev))
	if _, err := other.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: wf("role:executor")}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("another developer registering a new version: %v, want PERMISSION_DENIED", err)
	}
	if _, err := other.DeleteWorkflow(ctx, &kgwv1.DeleteWorkflowRequest{Name: "private"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("another developer deleting: %v, want PERMISSION_DENIED", err)
	}
	// The creator widens it to every executor; an empty list keeps it.
	if _, err := dev.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: wf("role:executor")}); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: wf()}); err != nil {
		t.Fatal(err)
	}
	got, err := dev.GetWorkflow(ctx, &kgwv1.GetWorkflowRequest{Name: "private"})
	if err != nil || got.GetWorkflow().GetVersion() != 3 || strings.Join(got.GetWorkflow().GetAllowedCallers(), ",") != "role:executor" {
		t.Fatalf("GetWorkflow = %v, %v", got, err)
	}
	if err := run(keyB); err != nil {
		t.Errorf("executor after role:executor was granted: %v", err)
	}
	if _, err := dev.DeleteWorkflow(ctx, &kgwv1.DeleteWorkflowRequest{Name: "private"}); err != nil {
		t.Errorf("creator deleting: %v", err)
	}
	// After the delete the name is free: another developer becomes the
	// creator of the next registration.
	if r, err := other.RegisterWorkflow(ctx, &kgwv1.RegisterWorkflowRequest{Workflow: wf()}); err != nil || r.GetWorkflow().GetCreator() != "key:"+strings.Split(otherDev, "_")[1] {
		t.Errorf("registering a deleted name: %v, %v", r.GetWorkflow().GetCreator(), err)
	}
}
