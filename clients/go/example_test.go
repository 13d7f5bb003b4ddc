package kgw_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	kgw "github.com/kailash-gateway/kgw/clients/go"
)

// quickStart is the Go quick start of README.md: the text between the
// "quick start" markers is what the README shows. TestEndToEnd runs it
// against a real gateway and PostgreSQL, so the documentation cannot drift.
func quickStart(ctx context.Context, target string, pgPort int, database string) (any, error) {
	// --- quick start ---
	client, err := kgw.Dial(ctx, target) // e.g. "127.0.0.1:50051"
	if err != nil {
		return nil, err
	}
	defer client.Close()

	// Store the database login once, encrypted in the gateway (a second run
	// keeps it); requests name the secret, never the password.
	if _, err := client.GetSecret(ctx, "app-db"); errors.Is(err, kgw.ErrSecretNotFound) {
		_, err = client.StoreSecret(ctx, "app-db", map[string]any{"user": "postgres", "password": "change-me"})
		if err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}

	wf, err := kgw.NewWorkflow("hello-database").
		AddCode("query", `
db = get_resource("db")
msg = db.fetchval("SELECT 'Hello from kgw'")
result = {"message": msg}
`, kgw.RequiredResources("db")).
		Build()
	if err != nil {
		return nil, err
	}
	if _, err := client.Register(ctx, wf); err != nil {
		return nil, err
	}

	ex, err := client.Execute(ctx, "hello-database",
		kgw.Resource("db", kgw.DatabaseSpec{
			Host: "127.0.0.1", Port: pgPort, Database: database, CredentialsRef: "app-db",
		}))
	if err != nil {
		return nil, err
	}
	if err := ex.Err(); err != nil { // the workflow itself failed
		return nil, err
	}
	fmt.Println(ex.Result["query"]["message"]) // Hello from kgw
	// --- end quick start ---
	return ex.Result["query"]["message"], nil
}

// Example registers and runs the hello-database workflow on a gateway at
// 127.0.0.1:50051 with PostgreSQL at 127.0.0.1:5432.
func Example() {
	if _, err := quickStart(context.Background(), "127.0.0.1:50051", 5432, "postgres"); err != nil {
		log.Fatal(err)
	}
}

// ExampleClient_Stream prints the events of an execution as they happen.
func ExampleClient_Stream() {
	ctx := context.Background()
	client, err := kgw.Dial(ctx, "127.0.0.1:50051")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	for ev, err := range client.Stream(ctx, "hello_db", kgw.Resource("db", kgw.Ref("app_db"))) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.Seq, ev.Kind, ev.NodeID)
		if ev.Terminal() {
			fmt.Println(ev.Execution.Status, ev.Execution.Result)
		}
	}
}

// ExampleLoadWorkflowFile registers a workflow written as a YAML file.
func ExampleLoadWorkflowFile() {
	wf, err := kgw.LoadWorkflowFile("testdata/hello/hello.yaml")
	if err != nil {
		log.Fatal(err) // names the file, line and field of each problem
	}
	fmt.Println(wf.GetName(), len(wf.GetNodes()), "nodes")
	// Output: hello_db 2 nodes
}
