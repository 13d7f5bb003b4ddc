package server_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// TestMalformedAuthorization sends bearer tokens that are not a valid API
// key (or a JWT, which this stack does not accept) through a real gateway
// under --auth required: each is UNAUTHENTICATED, and no error message
// repeats the token or the valid key's secret.
func TestMalformedAuthorization(t *testing.T) {
	s := startStack(t, stackOptions{authRequired: true})
	key := s.key(t, "viewer")
	rest := strings.TrimPrefix(key, "kgw_")
	id, secret := rest[:16], rest[17:]
	client := kgwv1.NewAccessServiceClient(s.dial(t))
	call := func(md ...string) (*kgwv1.WhoAmIResponse, error) {
		return client.WhoAmI(metadata.AppendToOutgoingContext(t.Context(), md...), &kgwv1.WhoAmIRequest{})
	}
	// The valid key, with either casing of the scheme, works.
	for _, scheme := range []string{"Bearer ", "bearer ", "Bearer   ", "BEARER ", "bEaReR "} {
		if got, err := call("authorization", scheme+key); err != nil || got.GetPrincipal() != "key:"+id {
			t.Fatalf("valid key with %q: %v, %v", scheme, got, err)
		}
	}
	for name, auth := range map[string]string{
		"empty":                "",
		"scheme only":          "Bearer ",
		"no scheme":            key,
		"basic scheme":         "Basic " + key,
		"scheme without space": "Bearer" + key,
		"wrong prefix":         "Bearer kgx_" + rest,
		"upper-case prefix":    "Bearer KGW_" + rest,
		"extra underscore":     "Bearer kgw_" + id + "__" + secret,
		"underscore in id":     "Bearer kgw_" + id[:15] + "_" + "_" + secret,
		"upper-case hex":       "Bearer kgw_" + strings.ToUpper(id) + "_" + secret,
		"non-hex secret":       "Bearer kgw_" + id + "_" + secret[:63] + "g",
		"short secret":         "Bearer kgw_" + id + "_" + secret[:63],
		"long secret":          "Bearer kgw_" + id + "_" + secret + "0",
		"very long":            "Bearer kgw_" + id + "_" + strings.Repeat(secret, 200),
		"inner space":          "Bearer kgw_" + id + " " + secret,
		"wrong secret":         "Bearer kgw_" + id + "_" + strings.Repeat("0", 64),
		"unknown id":           "Bearer kgw_" + strings.Repeat("0", 16) + "_" + secret,
		"other key's secret":   "Bearer kgw_" + strings.Repeat("f", 16) + "_" + secret,
		"jwt-shaped, no jwks":  "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",
	} {
		got, err := call("authorization", auth)
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: %v, %v; want UNAUTHENTICATED", name, got, err)
			continue
		}
		msg := status.Convert(err).Message()
		if strings.Contains(msg, secret) || strings.Contains(msg, secret[:16]) || (len(auth) > 12 && strings.Contains(msg, strings.TrimPrefix(auth, "Bearer "))) {
			t.Errorf("%s: error %q repeats the token", name, msg)
		}
	}
	// Two authorization headers, even if both are the valid key, are
	// malformed: which one counts must not depend on a proxy's order.
	if got, err := call("authorization", "Bearer "+key, "authorization", "Bearer "+key); status.Code(err) != codes.Unauthenticated {
		t.Errorf("two authorization headers: %v, %v; want UNAUTHENTICATED", got, err)
	}
	if got, err := call("authorization", "Bearer "+key, "authorization", "Bearer kgw_bad"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("valid then bad authorization header: %v, %v; want UNAUTHENTICATED", got, err)
	}
}

// TestForwardedClientCertSpoofing: with --trust-forwarded-client-cert, a
// header whose Subject hides a CN inside another attribute, or whose SPIFFE
// id climbs out of a bound prefix with "..", does not name the caller that
// role bindings give roles to. Before the fix both were accepted as
// cert:victim and as a principal matching spiffe://mesh.test/ns/payments/*.
func TestForwardedClientCertSpoofing(t *testing.T) {
	s := startStack(t, stackOptions{authRequired: true, trustXFCC: true})
	for pattern, role := range map[string]string{"cert:victim": "admin", "spiffe://mesh.test/ns/payments/*": "developer"} {
		if _, err := s.auth.Bindings.Create(t.Context(), pattern, []string{role}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	client := kgwv1.NewAccessServiceClient(s.dial(t))
	whoami := func(header ...string) (*kgwv1.WhoAmIResponse, error) {
		var md []string
		for _, h := range header {
			md = append(md, "x-forwarded-client-cert", h)
		}
		return client.WhoAmI(metadata.AppendToOutgoingContext(t.Context(), md...), &kgwv1.WhoAmIRequest{})
	}
	// The honest forms work and get the bound roles.
	if got, err := whoami(`Hash=1;Subject="CN=victim,O=Mesh"`); err != nil || got.GetPrincipal() != "cert:victim" || !strings.Contains(strings.Join(got.GetRoles(), ","), "admin") {
		t.Fatalf("honest CN: %v, %v", got, err)
	}
	if got, err := whoami(`Hash=1;URI=spiffe://mesh.test/ns/payments/sa/api`); err != nil || got.GetPrincipal() != "spiffe://mesh.test/ns/payments/sa/api" {
		t.Fatalf("honest SPIFFE id: %v, %v", got, err)
	}
	for _, h := range [][]string{
		{`Hash=1;Subject="O=evil\,CN=victim"`},
		{`Hash=1;Subject="CN=victim+CN=evil"`},
		{`Hash=1;URI=spiffe://mesh.test/ns/payments/../other/sa/x`},
		{`Hash=1;URI=spiffe://mesh.test/ns/payments/*`},
		{`Hash=1;URI=spiffe://mesh.test/ns/other;URI=spiffe://mesh.test/ns/payments/sa/api`},
		// Two header values: not trusted at all.
		{`URI=spiffe://mesh.test/ns/payments/sa/api`, `URI=spiffe://mesh.test/ns/payments/sa/api`},
	} {
		if got, err := whoami(h...); status.Code(err) != codes.Unauthenticated {
			t.Errorf("x-forwarded-client-cert %q: %v, %v; want UNAUTHENTICATED", h, got, err)
		}
	}
}

// TestExecutorCannotReachOthersExecutions: a caller with only the executor
// role, knowing (or guessing) another caller's execution id, idempotency
// key or page token, learns nothing about that execution: Get, Watch and
// Cancel answer exactly as for an unknown id, a caller filter for someone
// else is refused, a page token of another caller lists only its own, and
// the same idempotency key starts a separate execution.
func TestExecutorCannotReachOthersExecutions(t *testing.T) {
	s := startStack(t, stackOptions{authRequired: true})
	ctx := t.Context()
	s.register(t, &kgwv1.Workflow{Name: "noop", Nodes: []*kgwv1.Node{{Id: "n", Code: "result = {}"}}})
	keyA, keyB := s.key(t, "executor"), s.key(t, "executor")
	a := kgwv1.NewExecutionServiceClient(s.dialAs(t, keyA))
	b := kgwv1.NewExecutionServiceClient(s.dialAs(t, keyB))
	var idsA []string
	for i := 0; i < 3; i++ {
		r, err := a.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "noop", IdempotencyKey: fmt.Sprintf("k%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		idsA = append(idsA, r.GetExecution().GetId())
	}
	callerA := "key:" + strings.TrimPrefix(keyA, "kgw_")[:16]
	if got, err := a.GetExecution(ctx, &kgwv1.GetExecutionRequest{ExecutionId: idsA[0]}); err != nil || got.GetExecution().GetCaller() != callerA {
		t.Fatalf("owner's GetExecution: %v, %v", got, err)
	}

	// Same answer as for an id that does not exist.
	same := func(what string, call func(id string) error) {
		t.Helper()
		errOther, errNone := call(idsA[0]), call("no-such-execution")
		msgOther := strings.ReplaceAll(status.Convert(errOther).Message(), idsA[0], "ID")
		msgNone := strings.ReplaceAll(status.Convert(errNone).Message(), "no-such-execution", "ID")
		if status.Code(errOther) != codes.NotFound || status.Code(errNone) != codes.NotFound || msgOther != msgNone {
			t.Errorf("%s: another caller's execution %v, an unknown one %v; want the same NOT_FOUND", what, errOther, errNone)
		}
	}
	same("GetExecution", func(id string) error {
		_, err := b.GetExecution(ctx, &kgwv1.GetExecutionRequest{ExecutionId: id})
		return err
	})
	same("CancelExecution", func(id string) error {
		_, err := b.CancelExecution(ctx, &kgwv1.CancelExecutionRequest{ExecutionId: id})
		return err
	})
	same("WatchExecution", func(id string) error {
		st, err := b.WatchExecution(ctx, &kgwv1.WatchExecutionRequest{ExecutionId: id})
		if err != nil {
			return err
		}
		_, err = st.Recv()
		return err
	})

	if _, err := b.ListExecutions(ctx, &kgwv1.ListExecutionsRequest{Caller: callerA}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ListExecutions with another caller's filter: %v; want INVALID_ARGUMENT", err)
	}
	first, err := a.ListExecutions(ctx, &kgwv1.ListExecutionsRequest{PageSize: 1})
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("owner's first page: %v, %v", first, err)
	}
	if got, err := b.ListExecutions(ctx, &kgwv1.ListExecutionsRequest{PageSize: 1, PageToken: first.GetNextPageToken()}); err == nil && len(got.GetExecutions()) > 0 {
		t.Errorf("another caller's page token listed %v", got.GetExecutions())
	}
	if got, err := b.ListExecutions(ctx, &kgwv1.ListExecutionsRequest{}); err != nil || len(got.GetExecutions()) != 0 {
		t.Errorf("ListExecutions by a caller with none: %v, %v", got, err)
	}

	// The same idempotency key from another caller is another execution.
	r, err := b.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "noop", IdempotencyKey: "k0"})
	if err != nil || r.GetExecution().GetId() == idsA[0] {
		t.Errorf("idempotency key k0 from another caller: %v, %v; want a new execution", r, err)
	}
	for _, id := range idsA {
		if x, err := s.ex.GetExecution(ctx, &kgwv1.GetExecutionRequest{ExecutionId: id}); err != nil || x.GetExecution().GetStatus() != kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED {
			t.Errorf("A's execution %s after B's attempts: %v, %v", id, x, err)
		}
	}
}

// TestAPIKeyNeverLeaks: the secret part of an API key appears in no log
// line (with the access log on), no error, and no store file, through
// creation, use, a wrong secret, listing and revocation.
func TestAPIKeyNeverLeaks(t *testing.T) {
	logs := &lockedBuffer{}
	s := startStack(t, stackOptions{authRequired: true, accessLog: true, logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx := t.Context()
	acc := kgwv1.NewAccessServiceClient(s.conn)
	created, err := acc.CreateApiKey(ctx, &kgwv1.CreateApiKeyRequest{Name: "leak-check", Roles: []string{"viewer"}})
	if err != nil {
		t.Fatal(err)
	}
	key := created.GetKey()
	secret := key[len(key)-64:]
	if got, err := kgwv1.NewAccessServiceClient(s.dialAs(t, key)).WhoAmI(ctx, &kgwv1.WhoAmIRequest{}); err != nil || got.GetRoles()[0] != "viewer" {
		t.Fatalf("WhoAmI with the new key: %v, %v", got, err)
	}
	var errs []string
	wrong := key[:len(key)-8] + "00000000"
	for _, tok := range []string{wrong, key + "0", strings.ToUpper(key)} {
		_, err := kgwv1.NewAccessServiceClient(s.dialAs(t, tok)).WhoAmI(ctx, &kgwv1.WhoAmIRequest{})
		errs = append(errs, fmt.Sprint(err))
	}
	// A viewer calling an admin RPC: PERMISSION_DENIED, logged.
	_, err = kgwv1.NewAccessServiceClient(s.dialAs(t, key)).ListApiKeys(ctx, &kgwv1.ListApiKeysRequest{})
	errs = append(errs, fmt.Sprint(err))
	list, err := acc.ListApiKeys(ctx, &kgwv1.ListApiKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acc.RevokeApiKey(ctx, &kgwv1.RevokeApiKeyRequest{Id: created.GetApiKey().GetId()}); err != nil {
		t.Fatal(err)
	}
	_, err = kgwv1.NewAccessServiceClient(s.dialAs(t, key)).WhoAmI(ctx, &kgwv1.WhoAmIRequest{})
	errs = append(errs, fmt.Sprint(err))

	for _, part := range []string{secret, secret[:32], secret[32:], wrong[len(wrong)-64:]} {
		if strings.Contains(logs.String(), part) {
			t.Errorf("a log line holds the key's secret part")
		}
		if strings.Contains(strings.Join(errs, "\n"), part) {
			t.Errorf("an error holds the key's secret part: %q", errs)
		}
		if strings.Contains(list.String(), part) {
			t.Errorf("ListApiKeys returns the key's secret part")
		}
	}
	if !strings.Contains(logs.String(), "audit: authentication failed") || !strings.Contains(logs.String(), "audit: permission denied") {
		t.Errorf("audit lines missing:\n%s", logs.String())
	}
	s.st.Close()
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(s.storePath), "*"))
	if len(files) == 0 {
		t.Fatalf("no store files next to %s", s.storePath)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), secret) || strings.Contains(string(b), secret[:32]) {
			t.Errorf("store file %s holds the key's secret part", f)
		}
	}
}
