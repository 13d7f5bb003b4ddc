package executor_test

import (
	"errors"
	"testing"

	"github.com/kailash-gateway/kgw/executor"
	"github.com/kailash-gateway/kgw/store"
)

func TestMaxRunsPerCaller(t *testing.T) {
	e := newExecutor(t, executor.Config{MaxRunsPerCaller: 1})
	ctx := t.Context()
	slow := workflow("slow", []store.Node{codeNode("n", "time.sleep(0.3)\nresult = {}")})
	id, err := e.Start(ctx, &executor.Request{Workflow: slow, Caller: "key:a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(ctx, &executor.Request{Workflow: slow, Caller: "key:a"}); !errors.Is(err, executor.ErrCallerLimit) {
		t.Fatalf("second Start of key:a: err = %v, want ErrCallerLimit", err)
	}
	// Another caller is not limited by key:a's run.
	if _, err := e.Execute(ctx, &executor.Request{Workflow: workflow("quick", []store.Node{codeNode("n", "result = {}")}), Caller: "key:b"}); err != nil {
		t.Fatalf("Execute of key:b: %v", err)
	}
	// Once key:a's run ends, key:a may start again.
	sub, err := e.Subscribe(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := sub.Next(ctx); err != nil {
			break
		}
	}
	sub.Close()
	x, err := e.Execute(ctx, &executor.Request{Workflow: slow, Caller: "key:a"})
	if err != nil || x.Status != store.ExecutionCompleted {
		t.Fatalf("Execute of key:a after its first run ended: %v, %v", x, err)
	}
}
