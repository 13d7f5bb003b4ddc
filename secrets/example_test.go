package secrets_test

import (
	"fmt"

	"github.com/kailash-gateway/kgw/secrets"
)

func ExampleRedactor() {
	r := secrets.NewRedactor()
	// The broker adds what it resolved for the execution. "user" is an
	// identity field, not a credential: it is not redacted.
	r.Add(map[string]any{"user": "app", "password": "hunter2-correct-horse"})

	fmt.Println(r.String("connect failed for postgres://app:hunter2-correct-horse@db/orders"))
	fmt.Println(r.Value(map[string]any{"echo": []any{"hunter2-correct-horse", "app", "apple"}}))
	// Output:
	// connect failed for postgres://app:[REDACTED]@db/orders
	// map[echo:[[REDACTED] app apple]]
}

func ExampleHostAllowed() {
	patterns := []string{"db.example.com", "*.internal.example", "10.0.0.5"}
	for _, host := range []string{"DB.example.com:5432", "api.internal.example", "internal.example", "10.0.0.5", "evil.example"} {
		fmt.Println(host, secrets.HostAllowed(patterns, host))
	}
	// Output:
	// DB.example.com:5432 true
	// api.internal.example true
	// internal.example false
	// 10.0.0.5 true
	// evil.example false
}
