// Command upstream serves the HTTP API that the example workflows call
// (see examples/internal/upstream), for running the examples by hand:
//
//	go run ./examples/upstream -addr 127.0.0.1:8090 -token example-token
//
// It logs every request it receives.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/kailash-gateway/kgw/examples/internal/upstream"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	token := flag.String("token", "example-token", "bearer token every request must carry (empty: none)")
	flag.Parse()
	up := upstream.New(upstream.Config{Token: *token})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s idempotency-key=%q", r.Method, r.URL.RequestURI(), r.Header.Get("Idempotency-Key"))
		up.ServeHTTP(w, r)
	})
	srv := &http.Server{Addr: *addr, Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("example upstream listening on http://%s", *addr)
	log.Fatal(srv.ListenAndServe())
}
