// Package upstream is the HTTP API that the example workflows call: a
// dashboard API, a credit check, a notification sink, a flaky endpoint and a
// payment API. It records every request it receives, so that tests can check
// what the gateway sent and when, and `go run ./examples/upstream` serves it
// for trying the examples by hand.
package upstream

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// A Request is one request the upstream received.
type Request struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
	// Time is when the request arrived.
	Time time.Time
}

// JSON decodes the request body into a map (nil if it is not a JSON object).
func (r Request) JSON() map[string]any {
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		return nil
	}
	return m
}

// Config configures a Server. The zero value is usable: no authentication,
// no concurrency barrier, a flaky endpoint that fails twice, a credit limit
// of 1000 and a payment API that declines amounts above 500.
type Config struct {
	// Token, if set, is the bearer token every request must carry
	// (`Authorization: Bearer <Token>`); others get 401.
	Token string
	// DashboardBarrier, if positive, holds each /dashboard/ request until
	// that many are in flight at once (or DashboardWait has passed), so that
	// MaxInFlight proves whether the caller sent them concurrently.
	DashboardBarrier int
	// DashboardWait bounds the barrier wait (default 5 s).
	DashboardWait time.Duration
	// FlakyFailures is how many times /flaky/{key} fails with 503 for each
	// key before it succeeds (default 2).
	FlakyFailures int
	// CreditLimit is the largest amount /credit-check approves (default 1000).
	CreditLimit float64
	// DeclineAbove makes /charges decline amounts above it (default 500).
	DeclineAbove float64
}

// Server is the upstream API. It is an http.Handler, safe for concurrent use.
type Server struct {
	cfg Config
	mux *http.ServeMux

	mu          sync.Mutex
	requests    []Request
	flaky       map[string]int
	charges     map[string]map[string]any // by Idempotency-Key
	inFlight    int
	maxInFlight int
	arrived     chan struct{} // closed and replaced when a dashboard request arrives
}

// New returns a Server configured by cfg.
func New(cfg Config) *Server {
	if cfg.DashboardWait <= 0 {
		cfg.DashboardWait = 5 * time.Second
	}
	if cfg.FlakyFailures == 0 {
		cfg.FlakyFailures = 2
	}
	if cfg.CreditLimit == 0 {
		cfg.CreditLimit = 1000
	}
	if cfg.DeclineAbove == 0 {
		cfg.DeclineAbove = 500
	}
	s := &Server{
		cfg:     cfg,
		mux:     http.NewServeMux(),
		flaky:   map[string]int{},
		charges: map[string]map[string]any{},
		arrived: make(chan struct{}),
	}
	s.mux.HandleFunc("GET /dashboard/{section}", s.dashboard)
	s.mux.HandleFunc("POST /credit-check", s.creditCheck)
	s.mux.HandleFunc("POST /notify", s.notify)
	s.mux.HandleFunc("GET /flaky/{key}", s.flakyCall)
	s.mux.HandleFunc("POST /charges", s.charge)
	return s
}

// ServeHTTP records the request, checks the token and serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body, Time: time.Now(),
	})
	s.mu.Unlock()
	if s.cfg.Token != "" && r.Header.Get("Authorization") != "Bearer "+s.cfg.Token {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "missing or wrong bearer token"})
		return
	}
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	s.mux.ServeHTTP(w, r)
}

// Requests returns the requests whose path starts with prefix, in arrival
// order.
func (s *Server) Requests(prefix string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// MaxInFlight returns the largest number of /dashboard/ requests that were
// in flight at the same time.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

var sections = map[string]map[string]any{
	"users":   {"total": 1280, "active_today": 312},
	"orders":  {"total": 5411, "pending": 17},
	"revenue": {"today": 18250.5, "month": 402113.25, "currency": "USD"},
}

// dashboard serves GET /dashboard/{section}: users, orders and revenue
// answer with statistics; alerts is down (503); others are 404.
func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	s.enterBarrier()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	name := r.PathValue("section")
	if name == "alerts" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "alerts service unavailable"})
		return
	}
	data, ok := sections[name]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "no section " + name})
		return
	}
	writeJSON(w, http.StatusOK, data)
}

// enterBarrier counts the request in flight and, with a barrier configured,
// waits until enough requests are in flight together or the wait is over.
func (s *Server) enterBarrier() {
	s.mu.Lock()
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()
	if s.cfg.DashboardBarrier <= 0 {
		return
	}
	deadline := time.NewTimer(s.cfg.DashboardWait)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		reached := s.maxInFlight >= s.cfg.DashboardBarrier
		arrived := s.arrived
		s.mu.Unlock()
		if reached {
			return
		}
		select {
		case <-arrived:
		case <-deadline.C:
			return
		}
	}
}

// creditCheck serves POST /credit-check {customer_id, amount}.
func (s *Server) creditCheck(w http.ResponseWriter, r *http.Request) {
	var in struct {
		CustomerID any     `json:"customer_id"`
		Amount     float64 `json:"amount"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"customer_id": in.CustomerID,
		"approved":    in.Amount <= s.cfg.CreditLimit,
		"limit":       s.cfg.CreditLimit,
	})
}

// notify serves POST /notify {id}: accepts anything with an id.
func (s *Server) notify(w http.ResponseWriter, r *http.Request) {
	var in map[string]any
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in["id"] == nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "want a JSON object with an id"})
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"accepted": in["id"]})
}

// flakyCall serves GET /flaky/{key}: 503 for the first FlakyFailures calls
// of each key, then 200.
func (s *Server) flakyCall(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	s.mu.Lock()
	s.flaky[key]++
	n := s.flaky[key]
	s.mu.Unlock()
	if n <= s.cfg.FlakyFailures {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": fmt.Sprintf("temporarily unavailable (call %d)", n)})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": key, "calls": n, "value": "ready"})
}

// charge serves POST /charges {amount, currency, reference}: declines
// amounts above DeclineAbove with 402; a repeated Idempotency-Key returns
// the first charge.
func (s *Server) charge(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Amount    float64 `json:"amount"`
		Currency  string  `json:"currency"`
		Reference string  `json:"reference"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"code": "invalid_request", "message": err.Error()}})
		return
	}
	if in.Amount > s.cfg.DeclineAbove {
		writeJSON(w, http.StatusPaymentRequired, map[string]any{"error": map[string]any{"code": "card_declined", "message": "Your card was declined."}})
		return
	}
	key := r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	ch, seen := s.charges[key]
	if !seen || key == "" {
		ch = map[string]any{
			"id":        fmt.Sprintf("ch_%d", len(s.charges)+1),
			"status":    "succeeded",
			"amount":    in.Amount,
			"currency":  in.Currency,
			"reference": in.Reference,
		}
		if key != "" {
			s.charges[key] = ch
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, ch)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
