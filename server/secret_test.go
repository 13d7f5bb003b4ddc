package server_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/server"
)

// noValue fails the test if any secret value appears in m (every field,
// including nested ones, as protojson renders them).
func noValue(t *testing.T, what string, m proto.Message, values ...string) {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if strings.Contains(string(b), v) {
			t.Fatalf("%s contains a secret value: %s", what, b)
		}
	}
}

// noValueInError fails the test if a secret value appears in an RPC error:
// its message or any of its details.
func noValueInError(t *testing.T, what string, err error, values ...string) {
	t.Helper()
	st := status.Convert(err)
	noValue(t, what, st.Proto(), values...)
	for _, v := range values {
		if strings.Contains(st.Message(), v) {
			t.Fatalf("%s error message contains a secret value: %q", what, st.Message())
		}
	}
}

func TestSecretsRoundTrip(t *testing.T) {
	s := startStack(t, stackOptions{})
	ctx := t.Context()
	const user, password = "app-user-3f9c", "pw-Zq81-never-shown"
	values := []string{user, password}

	before := time.Now().Add(-time.Second)
	stored, err := s.sec.StoreSecret(ctx, &kgwv1.StoreSecretRequest{
		Name:         "db_creds",
		Value:        params(t, map[string]any{"user": user, "password": password}),
		Expiration:   &kgwv1.StoreSecretRequest_Ttl{Ttl: durationpb.New(time.Hour)},
		Description:  "orders database",
		AllowedHosts: []string{"127.0.0.1", "*.db.internal"},
	})
	if err != nil {
		t.Fatalf("StoreSecret: %v", err)
	}
	noValue(t, "StoreSecret response", stored, values...)
	sec := stored.GetSecret()
	if sec.GetName() != "db_creds" || sec.GetVersion() != 1 || !slices.Equal(sec.GetKeys(), []string{"password", "user"}) ||
		sec.GetDescription() != "orders database" || !slices.Equal(sec.GetAllowedHosts(), []string{"127.0.0.1", "*.db.internal"}) {
		t.Fatalf("StoreSecret = %v, want db_creds v1 keys [password user], the description and hosts", sec)
	}
	ct, et := sec.GetCreateTime().AsTime(), sec.GetExpireTime().AsTime()
	if ct.Before(before) || ct.After(time.Now().Add(time.Second)) || et.Sub(ct) < 59*time.Minute || et.Sub(ct) > 61*time.Minute {
		t.Fatalf("create_time %v expire_time %v, want now and an hour later", ct, et)
	}

	// A second store makes version 2, with an absolute expiry.
	exp := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	v2, err := s.sec.StoreSecret(ctx, &kgwv1.StoreSecretRequest{
		Name: "db_creds", Value: params(t, map[string]any{"user": user, "password": password + "2"}),
		Expiration: &kgwv1.StoreSecretRequest_ExpireTime{ExpireTime: timestamppb.New(exp)},
	})
	if err != nil || v2.GetSecret().GetVersion() != 2 || !v2.GetSecret().GetExpireTime().AsTime().Equal(exp) {
		t.Fatalf("StoreSecret v2 = %v, %v, want version 2 expiring at %v", v2, err, exp)
	}
	noValue(t, "StoreSecret v2 response", v2, values...)
	if _, err := s.sec.StoreSecret(ctx, &kgwv1.StoreSecretRequest{Name: "api_token", Value: params(t, map[string]any{"token": password + "-tok"})}); err != nil {
		t.Fatal(err)
	}

	got, err := s.sec.GetSecret(ctx, &kgwv1.GetSecretRequest{Name: "db_creds"})
	if err != nil {
		t.Fatalf("GetSecret: %v", err)
	}
	noValue(t, "GetSecret response", got, values...)
	if got.GetSecret().GetVersion() != 2 || !slices.Equal(got.GetSecret().GetKeys(), []string{"password", "user"}) {
		t.Fatalf("GetSecret = %v, want version 2 with keys", got.GetSecret())
	}

	if names := listSecretNames(t, s, values); !slices.Equal(names, []string{"api_token", "db_creds"}) {
		t.Fatalf("ListSecrets names = %v, want [api_token db_creds]", names)
	}

	if _, err := s.sec.DeleteSecret(ctx, &kgwv1.DeleteSecretRequest{Name: "db_creds"}); err != nil {
		t.Fatalf("DeleteSecret: %v", err)
	}
	for _, call := range []func() error{
		func() error { _, err := s.sec.GetSecret(ctx, &kgwv1.GetSecretRequest{Name: "db_creds"}); return err },
		func() error {
			_, err := s.sec.DeleteSecret(ctx, &kgwv1.DeleteSecretRequest{Name: "db_creds"})
			return err
		},
	} {
		if code, info, _ := details(t, call()); code != codes.NotFound || info.GetReason() != server.ReasonSecretNotFound {
			t.Fatalf("after delete: %v %v, want NOT_FOUND SECRET_NOT_FOUND", code, info)
		}
	}
}

// listSecretNames lists the secrets a page of one at a time (failing past
// 5 pages), checking that no response holds any of values, and returns
// their names.
func listSecretNames(t *testing.T, s *stack, values []string) (names []string) {
	t.Helper()
	token := ""
	for range 5 {
		page, err := s.sec.ListSecrets(t.Context(), &kgwv1.ListSecretsRequest{PageSize: 1, PageToken: token})
		if err != nil {
			t.Fatalf("ListSecrets: %v", err)
		}
		noValue(t, "ListSecrets response", page, values...)
		for _, m := range page.GetSecrets() {
			names = append(names, m.GetName())
		}
		if token = page.GetNextPageToken(); token == "" {
			return names
		}
	}
	t.Fatal("ListSecrets: more than 5 pages")
	return nil
}

func TestStoreSecretInvalid(t *testing.T) {
	s := startStack(t, stackOptions{})
	ctx := t.Context()
	const password = "s3cr3t-Value-xyz"
	val := params(t, map[string]any{"password": password})
	tests := []struct {
		name  string
		req   *kgwv1.StoreSecretRequest
		field string
	}{
		{"no name", &kgwv1.StoreSecretRequest{Value: val}, "name"},
		{"bad name", &kgwv1.StoreSecretRequest{Name: "has space", Value: val}, "name"},
		{"no value", &kgwv1.StoreSecretRequest{Name: "x"}, "value"},
		{"expired", &kgwv1.StoreSecretRequest{Name: "x", Value: val,
			Expiration: &kgwv1.StoreSecretRequest_ExpireTime{ExpireTime: timestamppb.New(time.Now().Add(-time.Hour))}}, "expire_time"},
		{"negative ttl", &kgwv1.StoreSecretRequest{Name: "x", Value: val,
			Expiration: &kgwv1.StoreSecretRequest_Ttl{Ttl: durationpb.New(-time.Minute)}}, "ttl"},
		{"bad host", &kgwv1.StoreSecretRequest{Name: "x", Value: val, AllowedHosts: []string{"*"}}, "allowed_hosts[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.sec.StoreSecret(ctx, tt.req)
			code, info, br := details(t, err)
			if code != codes.InvalidArgument || info.GetReason() != server.ReasonInvalidRequest {
				t.Fatalf("StoreSecret = %v %v, want INVALID_ARGUMENT INVALID_REQUEST", code, info)
			}
			var fields []string
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
			if !slices.Contains(fields, tt.field) {
				t.Fatalf("violations on %v, want one on %s", fields, tt.field)
			}
			noValueInError(t, "StoreSecret", err, password)
		})
	}
	_, err := s.sec.GetSecret(ctx, &kgwv1.GetSecretRequest{Name: "bad name"})
	if code, _, _ := details(t, err); code != codes.InvalidArgument {
		t.Fatalf("GetSecret(bad name) = %v, want INVALID_ARGUMENT", code)
	}
}
