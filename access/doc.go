// Package access decides who calls the gateway and what each caller may do.
//
// It authenticates callers (API keys, JWTs, client certificates) into a
// Principal with roles, resolves role bindings, and evaluates grants
// (allowed_callers) on secrets, named resources and workflows. It has no
// gRPC imports: server maps RPCs to the roles they need and turns the
// errors of this package into statuses. Imports flow server → access →
// {secrets, store}.
package access
