package server

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/kailash-gateway/kgw/access"
	_ "github.com/kailash-gateway/kgw/gen/go/kgw/v1" // registers the kgw.v1 descriptors
	"github.com/kailash-gateway/kgw/store/sqlite"
)

// TestEveryRPCHasARule walks every service of package kgw.v1 in the proto
// registry, and every service a Server registers, so that an RPC added
// without a rule fails here (and is refused at run time).
func TestEveryRPCHasARule(t *testing.T) {
	n := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("kgw.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				m := "/" + string(sd.FullName()) + "/" + string(sd.Methods().Get(j).Name())
				n++
				if _, ok := rules[m]; !ok {
					t.Errorf("RPC %s has no rule in server/auth.go", m)
				}
			}
		}
		return true
	})
	if n < 29 {
		t.Fatalf("walked %d RPCs of kgw.v1, want at least 29 (are the descriptors registered?)", n)
	}
	st, err := sqlite.Open(t.Context(), t.TempDir()+"/kgw.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := New(Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(t.Context()) // its stream workers
	for svc, info := range s.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			if _, ok := s.authz.rules[full]; !ok && !exempt(full) {
				t.Errorf("served RPC %s has no rule and is not exempt", full)
			}
		}
	}
	// Every rule names an RPC that exists and only known roles.
	for m, r := range rules {
		if !strings.HasPrefix(m, "/kgw.v1.") {
			t.Errorf("rule for %s: not a kgw.v1 RPC", m)
		}
		for _, role := range r.roles {
			if !access.ValidRole(role) {
				t.Errorf("rule for %s names unknown role %q", m, role)
			}
		}
	}
	// An RPC without a rule is refused, even for an admin.
	if allowed(rules, access.Local, "/kgw.v1.WorkflowService/Unknown") {
		t.Errorf("an RPC without a rule was allowed")
	}
	if !exempt("/grpc.health.v1.Health/Check") || !exempt("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo") {
		t.Errorf("health and reflection must be exempt")
	}
}
