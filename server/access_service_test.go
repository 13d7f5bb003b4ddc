package server_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

func TestAccessServiceValidation(t *testing.T) {
	s := startStack(t, stackOptions{}) // --auth none: the local admin
	ctx := t.Context()
	acc := kgwv1.NewAccessServiceClient(s.conn)
	who, err := acc.WhoAmI(ctx, &kgwv1.WhoAmIRequest{})
	if err != nil || who.GetPrincipal() != "local" || who.GetMethod() != "none" || len(who.GetRoles()) != 1 || who.GetRoles()[0] != "admin" {
		t.Fatalf("WhoAmI under --auth none = %v, %v", who, err)
	}
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"bad key name", func() error {
			_, err := acc.CreateApiKey(ctx, &kgwv1.CreateApiKeyRequest{Name: "no spaces", Roles: []string{"viewer"}})
			return err
		}, "name"},
		{"no roles", func() error {
			_, err := acc.CreateApiKey(ctx, &kgwv1.CreateApiKeyRequest{Name: "k"})
			return err
		}, "roles"},
		{"unknown role", func() error {
			_, err := acc.CreateApiKey(ctx, &kgwv1.CreateApiKeyRequest{Name: "k", Roles: []string{"root"}})
			return err
		}, "roles"},
		{"expiry in the past", func() error {
			_, err := acc.CreateApiKey(ctx, &kgwv1.CreateApiKeyRequest{Name: "k", Roles: []string{"viewer"}, ExpireTime: timestamppb.New(time.Now().Add(-time.Minute))})
			return err
		}, "expire_time"},
		{"bad key id", func() error {
			_, err := acc.RevokeApiKey(ctx, &kgwv1.RevokeApiKeyRequest{Id: "../x"})
			return err
		}, "id"},
		{"pattern *", func() error {
			_, err := acc.CreateRoleBinding(ctx, &kgwv1.CreateRoleBindingRequest{Principal: "*", Roles: []string{"admin"}})
			return err
		}, "principal"},
		{"pattern with inner *", func() error {
			_, err := acc.CreateRoleBinding(ctx, &kgwv1.CreateRoleBindingRequest{Principal: "spiffe://*/x", Roles: []string{"viewer"}})
			return err
		}, "principal"},
		{"bad binding id", func() error {
			_, err := acc.DeleteRoleBinding(ctx, &kgwv1.DeleteRoleBindingRequest{Id: ""})
			return err
		}, "id"},
		{"bad allowed caller", func() error {
			_, err := s.sec.StoreSecret(ctx, &kgwv1.StoreSecretRequest{Name: "s", Value: params(t, map[string]any{"a": "b"}), AllowedCallers: []string{"role:king"}})
			return err
		}, "allowed_callers[0]"},
	}
	for _, tt := range tests {
		code, _, br := details(t, tt.call())
		if code != codes.InvalidArgument || len(br.GetFieldViolations()) == 0 || br.GetFieldViolations()[0].GetField() != tt.field {
			t.Errorf("%s: %v %v, want INVALID_ARGUMENT on %s", tt.name, code, br, tt.field)
		}
	}
	if _, err := acc.RevokeApiKey(ctx, &kgwv1.RevokeApiKeyRequest{Id: "0123456789abcdef"}); codeOf(err) != codes.NotFound {
		t.Errorf("revoking an unknown key: %v, want NOT_FOUND", err)
	}
	made, err := acc.CreateApiKey(ctx, &kgwv1.CreateApiKeyRequest{Name: "ci.key-1", Roles: []string{"viewer", "executor", "viewer"}})
	if err != nil || len(made.GetApiKey().GetRoles()) != 2 || made.GetApiKey().GetCreator() != "local" {
		t.Fatalf("CreateApiKey = %v, %v", made, err)
	}
}

func codeOf(err error) codes.Code { return status.Code(err) }
