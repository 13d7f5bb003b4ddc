package codec

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/kailash-gateway/kgw/store"
)

// encodeJSON marshals v; a nil map or slice becomes "null".
func encodeJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode json: %w", err)
	}
	return string(b), nil
}

// decodeJSON unmarshals s into v. Numbers in interface values become int64
// when they are integers that fit, float64 otherwise.
func decodeJSON(s string, v any) error {
	if s == "" || s == "null" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode json: %w", err)
	}
	return fixNumbers(v)
}

// fixNumbers replaces json.Number values inside v (a pointer) by int64 or
// float64.
func fixNumbers(v any) error {
	switch p := v.(type) {
	case *map[string]any:
		return fixMap(*p)
	case *any:
		var err error
		*p, err = fixValue(*p)
		return err
	case *[]any:
		for i, e := range *p {
			var err error
			if (*p)[i], err = fixValue(e); err != nil {
				return err
			}
		}
	case interface{ fixNumbers() error }:
		return p.fixNumbers()
	}
	return nil
}

func fixMap(m map[string]any) error {
	for k, e := range m {
		f, err := fixValue(e)
		if err != nil {
			return err
		}
		m[k] = f
	}
	return nil
}

func fixValue(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, fmt.Errorf("decode json number %q: %w", x, err)
		}
		return f, nil
	case map[string]any:
		return x, fixMap(x)
	case []any:
		for i, e := range x {
			f, err := fixValue(e)
			if err != nil {
				return nil, err
			}
			x[i] = f
		}
		return x, nil
	}
	return v, nil
}

// EncodeMap encodes a JSON-like map (a node result, for instance) as JSON;
// a nil map gives nil, stored as SQL NULL.
func EncodeMap(m map[string]any) (*string, error) {
	if m == nil {
		return nil, nil
	}
	s, err := encodeJSON(m)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// decodeMap decodes what EncodeMap encodes; NULL gives nil.
func decodeMap(s *string) (map[string]any, error) {
	if s == nil {
		return nil, nil
	}
	var m map[string]any
	if err := decodeJSON(*s, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// EncodeError encodes an ExecError as JSON; nil gives nil, stored as SQL
// NULL.
func EncodeError(e *store.ExecError) (*string, error) {
	if e == nil {
		return nil, nil
	}
	s, err := encodeJSON(e)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// decodeError decodes what EncodeError encodes; NULL gives nil.
func decodeError(s *string) (*store.ExecError, error) {
	if s == nil {
		return nil, nil
	}
	var e store.ExecError
	if err := decodeJSON(*s, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// EncodeRequest encodes an ExecutionRequest as JSON, with the type's own
// JSON tags.
func EncodeRequest(r *store.ExecutionRequest) (string, error) { return encodeJSON(r) }

func decodeRequest(s string) (store.ExecutionRequest, error) {
	var r store.ExecutionRequest
	if err := decodeJSON(s, &r); err != nil {
		return r, err
	}
	if err := fixMap(r.Parameters); err != nil {
		return r, err
	}
	if err := fixMap(r.Context); err != nil {
		return r, err
	}
	for _, spec := range r.Resources {
		if err := fixMap(spec.Config); err != nil {
			return r, err
		}
	}
	return r, nil
}

// EncodeSpec encodes a ResourceSpec as JSON, with the type's own JSON tags.
func EncodeSpec(s *store.ResourceSpec) (string, error) { return encodeJSON(s) }

func decodeSpec(s string) (store.ResourceSpec, error) {
	var spec store.ResourceSpec
	if err := decodeJSON(s, &spec); err != nil {
		return spec, err
	}
	return spec, fixMap(spec.Config)
}
