package executor_test

import (
	"context"
	"fmt"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/store"
)

func Example() {
	ctx := context.Background()
	e := executor.New(executor.Config{}) // no store: executions are not journalled
	defer e.Close(ctx)

	w := &store.Workflow{
		Name:    "hello",
		Version: 1,
		Nodes: []store.Node{
			{ID: "greet", Code: `result = {"message": "hello " + name}`},
			{ID: "shout", Code: `result = {"message": message.upper()}`},
		},
		Connections: []store.Connection{{FromNode: "greet", ToNode: "shout"}}, // pass all
	}
	x, err := e.Execute(ctx, &executor.Request{Workflow: w, Parameters: map[string]any{"name": "world"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(x.Status == store.ExecutionCompleted)
	fmt.Println(executor.Results(x)["shout"].(map[string]any)["message"])
	// Output:
	// true
	// HELLO WORLD
}
