package httppool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/internal/starval"
)

// Handle is the "http_client" value a node attempt gets from get_resource.
// It is safe for concurrent use. It holds no connection between calls;
// Close makes later calls fail.
type Handle struct {
	pool   *Pool
	name   string
	attrs  map[string]*starlark.Builtin
	closed atomic.Bool
}

var (
	_ starlark.HasAttrs = (*Handle)(nil)
	_ starlark.HasAttrs = (*Response)(nil)
)

// Close ends the handle. Requests already running finish; later calls fail.
func (h *Handle) Close() { h.closed.Store(true) }

func (h *Handle) String() string        { return fmt.Sprintf("<http_client %q>", h.name) }
func (h *Handle) Type() string          { return "http_client" }
func (h *Handle) Freeze()               {}
func (h *Handle) Truth() starlark.Bool  { return starlark.True }
func (h *Handle) Hash() (uint32, error) { return 0, errors.New("unhashable type: http_client") }

// Attr returns a request method, or base_url.
func (h *Handle) Attr(name string) (starlark.Value, error) {
	if name == "base_url" {
		return starlark.String(h.pool.cfg.BaseURL), nil
	}
	if b, ok := h.attrs[name]; ok {
		return b, nil
	}
	return nil, starval.NoSuchAttr(h.Type(), name, h.AttrNames())
}

// AttrNames lists the methods.
func (h *Handle) AttrNames() []string {
	names := []string{"base_url"}
	for k := range h.attrs {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func (h *Handle) methods() map[string]*starlark.Builtin {
	m := map[string]*starlark.Builtin{}
	for _, method := range []string{"get", "post", "put", "patch", "delete", "head"} {
		verb := strings.ToUpper(method)
		m[method] = starlark.NewBuiltin(method, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return h.call(th, b.Name(), verb, args, kwargs)
		})
	}
	m["request"] = starlark.NewBuiltin("request", func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(args) == 0 {
			return nil, errors.New("request: missing argument method")
		}
		verb, ok := starlark.AsString(args[0])
		if !ok || verb == "" || strings.ContainsAny(verb, " \t\r\n") {
			return nil, errors.New("request: method must be a non-empty string")
		}
		return h.call(th, b.Name(), strings.ToUpper(verb), args[1:], kwargs)
	})
	return m
}

// requestArgs are the arguments of a request method other than timeout=.
type requestArgs struct {
	verb, url       string
	params, headers *starlark.Dict
	json, data      starlark.Value
}

// call unpacks (url, params=, headers=, json=, data=, timeout=) and sends.
func (h *Handle) call(th *starlark.Thread, fn, verb string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	ra := requestArgs{verb: verb}
	var timeout starlark.Value
	if err := starlark.UnpackArgs(fn, args, kwargs, "url", &ra.url, "params?", &ra.params,
		"headers?", &ra.headers, "json?", &ra.json, "data?", &ra.data, "timeout?", &timeout); err != nil {
		return nil, err
	}
	if h.closed.Load() {
		return nil, starval.NewResourceError(h.name, fn, fmt.Errorf("resource '%s' is no longer available: the node attempt that opened it has ended", h.name))
	}
	req, err := h.build(th, &ra)
	if err != nil {
		return nil, fmt.Errorf("%s.%s: %w", h.name, fn, err)
	}
	d := h.pool.cfg.Timeout
	if timeout != nil && timeout != starlark.None {
		f, ok := starlark.AsFloat(timeout)
		if !ok || f <= 0 {
			return nil, fmt.Errorf("%s: timeout must be a positive number of seconds", fn)
		}
		d = time.Duration(f * float64(time.Second))
	}
	resp, err := h.send(req, d)
	if err != nil {
		h.pool.noteError(err)
		return nil, starval.NewResourceError(h.name, fn, err)
	}
	return resp, nil
}

// build makes the request of ra: the URL resolved against the base URL
// with params added to its query, the body, then the headers.
func (h *Handle) build(th *starlark.Thread, ra *requestArgs) (*http.Request, error) {
	u, err := h.pool.cfg.resolve(ra.url)
	if err != nil {
		return nil, err
	}
	if err := addQuery(u, ra.params); err != nil {
		return nil, err
	}
	body, contentType, err := encodeBody(ra.json, ra.data)
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(starval.Context(th), ra.verb, u.String(), rd)
	if err != nil {
		return nil, err
	}
	for k, v := range h.pool.cfg.Headers {
		req.Header.Set(k, v)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if err := setHeaders(req, ra.headers); err != nil {
		return nil, err
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "kgw")
	}
	return req, nil
}

// addQuery adds params (values may be lists) to the query of u.
func addQuery(u *url.URL, params *starlark.Dict) error {
	if params == nil || params.Len() == 0 {
		return nil
	}
	q := u.Query()
	for _, kv := range params.Items() {
		k, ok := starlark.AsString(kv[0])
		if !ok {
			return fmt.Errorf("params: key %s is not a string", kv[0])
		}
		vals, err := paramValues(kv[1])
		if err != nil {
			return fmt.Errorf("params[%q]: %w", k, err)
		}
		q[k] = append(q[k], vals...)
	}
	u.RawQuery = q.Encode()
	return nil
}

// encodeBody returns the body of json= or data= (at most one of them) and
// its content type; no body is nil.
func encodeBody(jsonBody, data starlark.Value) (body []byte, contentType string, err error) {
	hasJSON := jsonBody != nil && jsonBody != starlark.None
	hasData := data != nil && data != starlark.None
	switch {
	case hasJSON && hasData:
		return nil, "", errors.New("give json= or data=, not both")
	case hasJSON:
		body, err = starval.EncodeJSON(jsonBody, 0)
		if err != nil {
			return nil, "", fmt.Errorf("json: %w", err)
		}
		return body, "application/json", nil
	case !hasData:
		return nil, "", nil
	}
	switch d := data.(type) {
	case starlark.String:
		return []byte(d), "text/plain; charset=utf-8", nil
	case starlark.Bytes:
		return []byte(d), "application/octet-stream", nil
	case *starlark.Dict:
		form := url.Values{}
		for _, kv := range d.Items() {
			k, ok := starlark.AsString(kv[0])
			if !ok {
				return nil, "", fmt.Errorf("data: key %s is not a string", kv[0])
			}
			vals, err := paramValues(kv[1])
			if err != nil {
				return nil, "", fmt.Errorf("data[%q]: %w", k, err)
			}
			form[k] = append(form[k], vals...)
		}
		return []byte(form.Encode()), "application/x-www-form-urlencoded", nil
	default:
		return nil, "", fmt.Errorf("data must be a string, bytes or dict, not %s", data.Type())
	}
}

// setHeaders sets the headers= of a call on req.
func setHeaders(req *http.Request, headers *starlark.Dict) error {
	if headers == nil {
		return nil
	}
	for _, kv := range headers.Items() {
		k, ok := starlark.AsString(kv[0])
		if !ok {
			return fmt.Errorf("headers: key %s is not a string", kv[0])
		}
		v, err := scalar(kv[1])
		if err != nil {
			return fmt.Errorf("headers[%q]: %w", k, err)
		}
		req.Header.Set(k, v)
	}
	return nil
}

func (h *Handle) send(req *http.Request, timeout time.Duration) (*Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), timeout)
	defer cancel()
	req, span := h.startSpan(req.WithContext(ctx))
	h.pool.inFlight.Add(1)
	h.pool.requests.Add(1)
	defer h.pool.inFlight.Add(-1)
	resp, err := h.pool.client.Do(req)
	endSpan(span, resp, err)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	limit := h.pool.cfg.MaxResponseBytes
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read response body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("response body from %s exceeds max_response_bytes (%d)", req.URL.Host, limit)
	}
	hd := starlark.NewDict(len(resp.Header))
	keys := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		_ = hd.SetKey(starlark.String(strings.ToLower(k)), starlark.String(strings.Join(resp.Header[k], ", ")))
	}
	hd.Freeze()
	return &Response{
		name:    h.name,
		status:  resp.StatusCode,
		reason:  http.StatusText(resp.StatusCode),
		url:     resp.Request.URL.String(),
		headers: hd,
		body:    body,
	}, nil
}

func paramValues(v starlark.Value) ([]string, error) {
	if seq, ok := v.(starlark.Indexable); ok && !isString(v) {
		out := make([]string, seq.Len())
		for i := range out {
			s, err := scalar(seq.Index(i))
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	}
	s, err := scalar(v)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

func isString(v starlark.Value) bool {
	switch v.(type) {
	case starlark.String, starlark.Bytes:
		return true
	}
	return false
}

func scalar(v starlark.Value) (string, error) {
	switch v := v.(type) {
	case starlark.String:
		return string(v), nil
	case starlark.Bytes:
		return string(v), nil
	case starlark.Int, starlark.Float:
		return v.String(), nil
	case starlark.Bool:
		if v {
			return "true", nil
		}
		return "false", nil
	}
	return "", fmt.Errorf("cannot send a %s (use str, int, float or bool)", v.Type())
}

// Response is what the request methods return. It is immutable.
type Response struct {
	name    string // of the resource, for errors
	status  int
	reason  string
	url     string
	headers *starlark.Dict
	body    []byte
}

func (r *Response) String() string       { return fmt.Sprintf("<response [%d]>", r.status) }
func (r *Response) Type() string         { return "http_client.response" }
func (r *Response) Freeze()              {}
func (r *Response) Truth() starlark.Bool { return starlark.Bool(r.ok()) }
func (r *Response) Hash() (uint32, error) {
	return 0, errors.New("unhashable type: http_client.response")
}
func (r *Response) ok() bool { return r.status < 400 }

// AttrNames lists the response's attributes.
func (r *Response) AttrNames() []string {
	return []string{"body", "headers", "json", "ok", "raise_for_status", "reason", "status", "status_code", "text", "url"}
}

// Attr returns an attribute of the response.
func (r *Response) Attr(name string) (starlark.Value, error) {
	switch name {
	case "status", "status_code":
		return starlark.MakeInt(r.status), nil
	case "ok":
		return starlark.Bool(r.ok()), nil
	case "reason":
		return starlark.String(r.reason), nil
	case "url":
		return starlark.String(r.url), nil
	case "headers":
		return r.headers, nil
	case "text":
		return starlark.String(r.body), nil
	case "body":
		return starlark.Bytes(r.body), nil
	case "json":
		return starlark.NewBuiltin("json", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
				return nil, err
			}
			v, err := starval.DecodeJSON(r.body, 0)
			if err != nil {
				return nil, fmt.Errorf("json: response body is not JSON: %w", err)
			}
			return v, nil
		}), nil
	case "raise_for_status":
		return starlark.NewBuiltin("raise_for_status", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
				return nil, err
			}
			if !r.ok() {
				kind := "Client"
				if r.status >= 500 {
					kind = "Server"
				}
				return nil, starval.NewResourceError(r.name, b.Name(), fmt.Errorf("%d %s Error: %s for url: %s", r.status, kind, r.reason, r.url))
			}
			return starlark.None, nil
		}), nil
	}
	return nil, starval.NoSuchAttr(r.Type(), name, r.AttrNames())
}
