package goclienttest_test

import (
	"context"
	"errors"
	"fmt"

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
