// Package goclienttest holds the Go client's tests that need the server's
// test harness: a real kgw serve and PostgreSQL (internal/testenv) and a test
// PKI (internal/testpki). They live in the main module so that the client
// module (clients/go) does not depend on the server module and its
// dependencies; the client's own unit tests stay in clients/go.
package goclienttest
