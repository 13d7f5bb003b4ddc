package kgw_test

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	kgw "github.com/kailash-gateway/kgw/clients/go"
	_ "github.com/kailash-gateway/kgw/gen/go/kgw/v1" // registers the kgw.v1 descriptors
)

// clientMethods maps every RPC of kgw.v1 to the Client method that calls it.
// TestClientCoversEveryRPC fails when the proto gains an RPC that is not
// listed here: give the client a method first.
var clientMethods = map[string]string{
	"kgw.v1.WorkflowService.RegisterWorkflow": "Register",
	"kgw.v1.WorkflowService.GetWorkflow":      "GetWorkflow",
	"kgw.v1.WorkflowService.ListWorkflows":    "ListWorkflows",
	"kgw.v1.WorkflowService.DeleteWorkflow":   "DeleteWorkflow",
	"kgw.v1.ExecutionService.ExecuteWorkflow": "Execute",
	"kgw.v1.ExecutionService.StartExecution":  "Start",
	"kgw.v1.ExecutionService.StreamExecution": "Stream",
	"kgw.v1.ExecutionService.WatchExecution":  "Watch",
	"kgw.v1.ExecutionService.GetExecution":    "GetExecution",
	"kgw.v1.ExecutionService.ListExecutions":  "ListExecutions",
	"kgw.v1.ExecutionService.CancelExecution": "CancelExecution",
	"kgw.v1.SecretService.StoreSecret":        "StoreSecret",
	"kgw.v1.SecretService.GetSecret":          "GetSecret",
	"kgw.v1.SecretService.ListSecrets":        "ListSecrets",
	"kgw.v1.SecretService.DeleteSecret":       "DeleteSecret",
	"kgw.v1.SecretService.UpdateSecretAccess": "UpdateSecretAccess",
	"kgw.v1.ResourceService.PutResource":      "PutResource",
	"kgw.v1.ResourceService.GetResource":      "GetResource",
	"kgw.v1.ResourceService.ListResources":    "ListResources",
	"kgw.v1.ResourceService.DeleteResource":   "DeleteResource",
	"kgw.v1.ResourceService.ListPools":        "ListPools",
	"kgw.v1.ResourceService.CheckResource":    "CheckResource",
	"kgw.v1.AccessService.CreateApiKey":       "CreateAPIKey",
	"kgw.v1.AccessService.ListApiKeys":        "ListAPIKeys",
	"kgw.v1.AccessService.RevokeApiKey":       "RevokeAPIKey",
	"kgw.v1.AccessService.CreateRoleBinding":  "CreateRoleBinding",
	"kgw.v1.AccessService.DeleteRoleBinding":  "DeleteRoleBinding",
	"kgw.v1.AccessService.ListRoleBindings":   "ListRoleBindings",
	"kgw.v1.AccessService.WhoAmI":             "WhoAmI",
}

// TestClientCoversEveryRPC walks the service descriptors of package kgw.v1
// (from gen/go) and checks that each RPC has a Client method.
func TestClientCoversEveryRPC(t *testing.T) {
	client := reflect.TypeFor[*kgw.Client]()
	seen := map[string]bool{}
	protoregistry.GlobalFiles.RangeFilesByPackage("kgw.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			svc := fd.Services().Get(i)
			for j := range svc.Methods().Len() {
				rpc := string(svc.Methods().Get(j).FullName())
				seen[rpc] = true
				name, ok := clientMethods[rpc]
				if !ok {
					t.Errorf("RPC %s has no method in the Go client (add one, then list it in clientMethods)", rpc)
					continue
				}
				if _, ok := client.MethodByName(name); !ok {
					t.Errorf("clientMethods[%s] = %s, but *kgw.Client has no such method", rpc, name)
				}
			}
		}
		return true
	})
	if len(seen) < 20 {
		t.Fatalf("found %d RPCs in package kgw.v1; are the descriptors registered?", len(seen))
	}
	for rpc := range clientMethods {
		if !seen[rpc] {
			t.Errorf("clientMethods lists %s, which the proto does not have", rpc)
		}
	}
}
