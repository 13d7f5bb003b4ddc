package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

func testAPIKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := &store.APIKey{ID: "a1", Name: "ci", Roles: []string{"executor", "viewer"}, Hash: []byte{1, 2, 3, 0, 255},
		CreateTime: at(0), ExpireTime: at(time.Hour), Creator: "key:root"}
	must(t, "CreateAPIKey", s.CreateAPIKey(ctx, k))
	wantErr(t, "CreateAPIKey(duplicate)", s.CreateAPIKey(ctx, k), store.ErrAlreadyExists)
	got, err := s.GetAPIKey(ctx, "a1")
	must(t, "GetAPIKey", err)
	if d := diff(k, got); d != "" {
		t.Errorf("GetAPIKey (-want +got):\n%s", d)
	}
	_, err = s.GetAPIKey(ctx, "nope")
	wantErr(t, "GetAPIKey(unknown)", err, store.ErrNotFound)

	must(t, "TouchAPIKey", s.TouchAPIKey(ctx, "a1", at(time.Minute)))
	got, err = s.GetAPIKey(ctx, "a1")
	must(t, "GetAPIKey", err)
	if !got.LastUsedTime.Equal(at(time.Minute)) {
		t.Errorf("LastUsedTime = %v, want %v", got.LastUsedTime, at(time.Minute))
	}
	wantErr(t, "TouchAPIKey(unknown)", s.TouchAPIKey(ctx, "nope", at(0)), store.ErrNotFound)

	for i := range 5 {
		must(t, "CreateAPIKey", s.CreateAPIKey(ctx, &store.APIKey{ID: fmt.Sprintf("b%d", i), Name: "n", Hash: []byte{1}, CreateTime: at(0)}))
	}
	var ids []string
	after := ""
	for {
		page, next, err := s.ListAPIKeys(ctx, store.Page{After: after, Limit: 2})
		must(t, "ListAPIKeys", err)
		for _, k := range page {
			ids = append(ids, k.ID)
		}
		if next == "" {
			break
		}
		after = next
	}
	if want := []string{"a1", "b0", "b1", "b2", "b3", "b4"}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("ListAPIKeys ids = %v, want %v", ids, want)
	}
	must(t, "DeleteAPIKey", s.DeleteAPIKey(ctx, "a1"))
	wantErr(t, "DeleteAPIKey(again)", s.DeleteAPIKey(ctx, "a1"), store.ErrNotFound)
	_, err = s.GetAPIKey(ctx, "a1")
	wantErr(t, "GetAPIKey(revoked)", err, store.ErrNotFound)
}

func testRoleBindings(t *testing.T, s store.Store) {
	ctx := t.Context()
	b := &store.RoleBinding{ID: "r1", Principal: "spiffe://mesh/ns/payments/*", Roles: []string{"executor"}, CreateTime: at(0), Creator: "key:root"}
	must(t, "CreateRoleBinding", s.CreateRoleBinding(ctx, b))
	wantErr(t, "CreateRoleBinding(duplicate)", s.CreateRoleBinding(ctx, b), store.ErrAlreadyExists)
	must(t, "CreateRoleBinding", s.CreateRoleBinding(ctx, &store.RoleBinding{ID: "r2", Principal: "jwt:alice", Roles: []string{"viewer", "developer"}, CreateTime: at(1)}))
	page, next, err := s.ListRoleBindings(ctx, store.Page{Limit: 1})
	must(t, "ListRoleBindings", err)
	if len(page) != 1 || next == "" {
		t.Fatalf("ListRoleBindings(limit 1) = %d items, next %q; want 1 and a cursor", len(page), next)
	}
	if d := diff(b, page[0]); d != "" {
		t.Errorf("ListRoleBindings[0] (-want +got):\n%s", d)
	}
	page, next, err = s.ListRoleBindings(ctx, store.Page{After: next, Limit: 1})
	must(t, "ListRoleBindings", err)
	if len(page) != 1 || page[0].ID != "r2" || next != "" {
		t.Errorf("ListRoleBindings page 2 = %v, next %q; want [r2] and the end", page, next)
	}
	must(t, "DeleteRoleBinding", s.DeleteRoleBinding(ctx, "r1"))
	wantErr(t, "DeleteRoleBinding(again)", s.DeleteRoleBinding(ctx, "r1"), store.ErrNotFound)
}

func testGrants(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetGrant(ctx, store.GrantSecret, "db")
	wantErr(t, "GetGrant(unknown)", err, store.ErrNotFound)
	g, err := s.PutGrant(ctx, &store.Grant{Kind: store.GrantSecret, Name: "db", Creator: "key:a", AllowedCallers: []string{"role:executor", "spiffe://m/*"}})
	must(t, "PutGrant", err)
	if g.Creator != "key:a" || len(g.AllowedCallers) != 2 {
		t.Errorf("PutGrant = %+v", g)
	}
	// An update replaces the callers and keeps the first creator.
	g, err = s.PutGrant(ctx, &store.Grant{Kind: store.GrantSecret, Name: "db", Creator: "key:b", AllowedCallers: nil})
	must(t, "PutGrant(update)", err)
	want := &store.Grant{Kind: store.GrantSecret, Name: "db", Creator: "key:a"}
	if d := diff(want, g); d != "" {
		t.Errorf("PutGrant(update) (-want +got):\n%s", d)
	}
	got, err := s.GetGrant(ctx, store.GrantSecret, "db")
	must(t, "GetGrant", err)
	if d := diff(want, got); d != "" {
		t.Errorf("GetGrant (-want +got):\n%s", d)
	}
	// Kinds are separate name spaces.
	_, err = s.GetGrant(ctx, store.GrantResource, "db")
	wantErr(t, "GetGrant(other kind)", err, store.ErrNotFound)
	must(t, "DeleteGrant", s.DeleteGrant(ctx, store.GrantSecret, "db"))
	must(t, "DeleteGrant(again)", s.DeleteGrant(ctx, store.GrantSecret, "db"))
	_, err = s.GetGrant(ctx, store.GrantSecret, "db")
	wantErr(t, "GetGrant(deleted)", err, store.ErrNotFound)
}

func testExecutionCallerFilter(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i, caller := range []string{"key:a", "key:b", "key:a"} {
		e := sampleExecution(fmt.Sprintf("x%d", i), at(time.Duration(i)*time.Second))
		e.Caller = caller
		must(t, "CreateExecution", s.CreateExecution(ctx, e))
	}
	got, _, err := s.ListExecutions(ctx, store.ExecutionQuery{Caller: "key:a"})
	must(t, "ListExecutions", err)
	var ids []string
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	if fmt.Sprint(ids) != "[x2 x0]" {
		t.Errorf("ListExecutions(caller key:a) = %v, want [x2 x0]", ids)
	}
}
