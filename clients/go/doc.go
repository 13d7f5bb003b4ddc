// Package kgw is the Go client of Kailash Gateway, a gRPC service that runs
// workflows of Starlark code nodes with pooled database, cache and HTTP
// resources and encrypted secrets.
//
// Dial a gateway, build and register a workflow, then execute it:
//
//	c, err := kgw.Dial(ctx, "127.0.0.1:50051")
//	...
//	defer c.Close()
//	wf, err := kgw.NewWorkflow("hello_db").
//		AddCode("query", code, kgw.RequiredResources("db")).
//		Build()
//	...
//	_, err = c.Register(ctx, wf)
//	ex, err := c.Execute(ctx, "hello_db",
//		kgw.Resource("db", kgw.DatabaseSpec{Host: "127.0.0.1", Database: "app", CredentialsRef: "db_creds"}))
//	...
//	fmt.Println(ex.Status, ex.Result["query"]["message"])
//
// Stream and Watch are Go iterators of execution events; the List methods
// are iterators over all pages. Stopping a loop early cancels the call.
//
// Failed calls return an *Error carrying the gRPC code, the ErrorInfo
// reason and the BadRequest violations; test them with errors.Is against
// the Err* sentinels (ErrWorkflowNotFound, ErrInvalidWorkflow, ErrNotFound,
// …) or with errors.As. A workflow that fails is not a Go error: Execute
// returns an Execution with Status StatusFailed (see Execution.Err).
//
// Workflow definitions can also be written as YAML or JSON files and read
// with LoadWorkflowFile (format: docs/workflow-files.md).
//
// A Client is safe for concurrent use.
package kgw
