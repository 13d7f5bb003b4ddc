package kgw_test

import (
	"context"
	"fmt"
	"log"

	kgw "github.com/kailash-gateway/kgw/clients/go"
)

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
