package resources_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/store"
)

// echo is an HTTP server that answers with what it received.
type echo struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func newEcho(t *testing.T) *echo {
	e := &echo{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.seen = append(e.seen, r.Clone(r.Context()))
		e.mu.Unlock()
		switch strings.TrimPrefix(r.URL.Path, "/v1") {
		case "/big":
			w.Write([]byte(strings.Repeat("x", 2048)))
			return
		case "/missing":
			http.Error(w, "no such thing", http.StatusNotFound)
			return
		case "/broken":
			http.Error(w, "oops", http.StatusBadGateway)
			return
		case "/redirect":
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo", "yes")
		json.NewEncoder(w).Encode(map[string]any{
			"method":  r.Method,
			"path":    r.URL.Path,
			"query":   r.URL.Query(),
			"body":    string(body),
			"ctype":   r.Header.Get("Content-Type"),
			"auth":    r.Header.Get("Authorization"),
			"custom":  r.Header.Get("X-Custom"),
			"default": r.Header.Get("X-Default"),
		})
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *echo) requests() []*http.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*http.Request(nil), e.seen...)
}

func httpSpec(baseURL string, extra map[string]any) store.ResourceSpec {
	cfg := map[string]any{"base_url": baseURL}
	for k, v := range extra {
		cfg[k] = v
	}
	return store.ResourceSpec{Type: resources.TypeHTTPClient, Config: cfg}
}

func TestHTTPMethods(t *testing.T) {
	srv := newEcho(t)
	b := resources.NewBroker(resources.Config{Logger: quiet})
	defer b.Close()
	specs := map[string]store.ResourceSpec{
		"api": httpSpec(srv.URL+"/v1", map[string]any{
			"headers": map[string]any{"X-Default": "d"}, "max_response_bytes": int64(1024)}),
	}
	g := mustExec(t, b, specs, `
api = get_resource("api")
r = api.get("users", params={"id": 7, "tag": ["a", "b"]}, headers={"X-Custom": "c"})
got = r.json()
status = r.status
ok = r.ok
header = r.headers["x-echo"]
text_has = '"method":"GET"' in r.text
body_type = type(r.body)
post = api.post("/items", json={"name": "pen", "n": 2}).json()
put = api.put("items/1", data="raw text").json()
patch = api.patch("items/1", data={"a": "1"}).json()
delete = api.delete("items/1").json()
head = api.head("items")
head_status = head.status
head_body = head.body
req = api.request("OPTIONS", "x", timeout=5).json()
missing = api.get("/missing")
missing_ok = missing.ok
missing_status = missing.status
absolute = api.get("`+srv.URL+`/elsewhere").json()
`)
	expect(t, g["got"], `{"method": "GET", "path": "/v1/users", "query": {"id": ["7"], "tag": ["a", "b"]}, "body": "", "ctype": "", "auth": "", "custom": "c", "default": "d"}`)
	expect(t, g["status"], "200")
	expect(t, g["ok"], "True")
	expect(t, g["header"], `"yes"`)
	expect(t, g["text_has"], "True")
	expect(t, g["body_type"], `"bytes"`)
	expect(t, g["post"], `{"method": "POST", "path": "/v1/items", "query": {}, "body": "{\"name\":\"pen\",\"n\":2}", "ctype": "application/json", "auth": "", "custom": "", "default": "d"}`)
	expect(t, g["put"], `{"method": "PUT", "path": "/v1/items/1", "query": {}, "body": "raw text", "ctype": "text/plain; charset=utf-8", "auth": "", "custom": "", "default": "d"}`)
	expect(t, g["patch"], `{"method": "PATCH", "path": "/v1/items/1", "query": {}, "body": "a=1", "ctype": "application/x-www-form-urlencoded", "auth": "", "custom": "", "default": "d"}`)
	expect(t, g["delete"], `{"method": "DELETE", "path": "/v1/items/1", "query": {}, "body": "", "ctype": "", "auth": "", "custom": "", "default": "d"}`)
	expect(t, g["head_status"], "200")
	expect(t, g["head_body"], `b""`)
	expect(t, g["missing_ok"], "False")
	expect(t, g["missing_status"], "404")
	expect(t, g["absolute"], `{"method": "GET", "path": "/elsewhere", "query": {}, "body": "", "ctype": "", "auth": "", "custom": "", "default": "d"}`)

	sess := b.Session(specs, nil)
	defer sess.Close()
	for _, tc := range []struct{ code, want string }{
		{`get_resource("api").get("/missing").raise_for_status()`, "404 Client Error"},
		{`get_resource("api").get("/broken").raise_for_status()`, "502 Server Error"},
		{`get_resource("api").get("/big")`, "exceeds max_response_bytes (1024)"},
		{`get_resource("api").get("/missing").json()`, "not JSON"},
		{`get_resource("api").get("ftp://example.com/x")`, "not http or https"},
		{`get_resource("api").post("x", json={"a": 1}, data="b")`, "not both"},
	} {
		_, err := exec(t.Context(), sess, tc.code)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.code, err, tc.want)
		}
	}
}
