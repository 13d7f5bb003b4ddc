package kgw_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	kgw "github.com/kailash-gateway/kgw/clients/go"
	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// helloWant is testdata/hello/hello.{yaml,json}.
func helloWant() *kgwv1.Workflow {
	return &kgwv1.Workflow{
		Name:        "hello_db",
		Description: "Says hello from PostgreSQL",
		Timeout:     durationpb.New(time.Minute),
		Labels:      map[string]string{"team": "docs", "tier": "1"},
		Nodes: []*kgwv1.Node{
			{
				Id:                "query",
				Code:              "db = get_resource(\"db\")\nmsg = db.fetchval(\"SELECT 'Hello from kgw'\")\nresult = {\"message\": msg}\n",
				RequiredResources: []string{"db"},
				Timeout:           durationpb.New(10 * time.Second),
				Retry: &kgwv1.RetryPolicy{
					MaxAttempts: 3, InitialBackoff: durationpb.New(500 * time.Millisecond),
					MaxBackoff: durationpb.New(5 * time.Second), Multiplier: 2,
				},
			},
			{Id: "shout", Code: "result = {\"loud\": message.upper()}\n"},
		},
		Connections: []*kgwv1.Connection{{FromNode: "query", FromOutput: "message", ToNode: "shout"}},
	}
}

func TestLoadWorkflowFile(t *testing.T) {
	for _, name := range []string{"hello.yaml", "hello.json"} {
		t.Run(name, func(t *testing.T) {
			got, err := kgw.LoadWorkflowFile(filepath.Join("testdata", "hello", name))
			if err != nil {
				t.Fatalf("LoadWorkflowFile(%s) error = %v", name, err)
			}
			if diff := cmp.Diff(helloWant(), got, protocmp.Transform()); diff != "" {
				t.Errorf("LoadWorkflowFile(%s) mismatch (-want +got):\n%s", name, diff)
			}
		})
	}
}

func TestLoadWorkflowFileErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wf.yml")
	if err := os.WriteFile(path, []byte("name: w\nnodes:\n  - id: a\n    code_file: missing.star\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := kgw.LoadWorkflowFile(path)
	var fe *kgw.FileError
	if !errors.As(err, &fe) || fe.Path != path || len(fe.Problems) != 1 || fe.Problems[0].Line != 4 {
		t.Fatalf("LoadWorkflowFile(missing code_file) error = %v, want one problem at line 4 in %s", err, path)
	}
	if !strings.HasPrefix(err.Error(), path+":4:") {
		t.Errorf("Error() = %q, want prefix %q", err, path+":4:")
	}
	if _, err := kgw.LoadWorkflowFile(filepath.Join(dir, "nope.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadWorkflowFile(missing) error = %v, want os.ErrNotExist", err)
	}
	if _, err := kgw.LoadWorkflowFile(dir); err == nil {
		t.Errorf("LoadWorkflowFile(directory) error = nil, want one")
	}
}

func TestParseWorkflow(t *testing.T) {
	node := func(id, code string) *kgwv1.Node { return &kgwv1.Node{Id: id, Code: code} }
	tests := []struct {
		name, format, data string
		want               *kgwv1.Workflow
	}{
		{"minimal yaml", "yaml", "name: w\nnodes:\n  - id: a\n    code: result = {}\n",
			&kgwv1.Workflow{Name: "w", Nodes: []*kgwv1.Node{node("a", "result = {}")}}},
		{"minimal json, sniffed", "", `  {"name": "w", "nodes": [{"id": "a", "code": "x = 1"}]}`,
			&kgwv1.Workflow{Name: "w", Nodes: []*kgwv1.Node{node("a", "x = 1")}}},
		{"json escapes and tabs", "json", "{\n\t\"name\": \"w\",\n\t\"nodes\": [{\"id\": \"a\", \"code\": \"s = \\\"a\\/b\\u00e9\\\"\\n\"}]\n}",
			&kgwv1.Workflow{Name: "w", Nodes: []*kgwv1.Node{node("a", "s = \"a/bé\"\n")}}},
		{"durations", "yaml", "name: w\ntimeout: 1.5\nnodes:\n  - id: a\n    code: x = 1\n    timeout: 1m30s\n",
			&kgwv1.Workflow{Name: "w", Timeout: durationpb.New(1500 * time.Millisecond), Nodes: []*kgwv1.Node{
				{Id: "a", Code: "x = 1", Timeout: durationpb.New(90 * time.Second)}}}},
		{"zero timeout is the default", "yaml", "name: w\ntimeout: 0\nnodes: [{id: a, code: x = 1}]\n",
			&kgwv1.Workflow{Name: "w", Nodes: []*kgwv1.Node{node("a", "x = 1")}}},
		{"compact connections", "yaml", `
name: w
disable_journal: true
nodes:
  - {id: a, code: x = 1}
  - {id: b, code: y = 1}
  - {id: c, code: z = 1}
connections:
  - {from: a, to: b}
  - {from: a.x, to: c.v}
  - {from: b.y, to: c}
`, &kgwv1.Workflow{Name: "w", DisableJournal: true, Nodes: []*kgwv1.Node{node("a", "x = 1"), node("b", "y = 1"), node("c", "z = 1")},
			Connections: []*kgwv1.Connection{
				{FromNode: "a", ToNode: "b"},
				{FromNode: "a", FromOutput: "x", ToNode: "c", ToInput: "v"},
				{FromNode: "b", FromOutput: "y", ToNode: "c"},
			}}},
		{"anchors", "yaml", `
name: w
nodes:
  - id: a
    code: x = 1
    retry: &r {max_attempts: 2}
  - id: b
    code: y = 1
    retry: *r
`, &kgwv1.Workflow{Name: "w", Nodes: []*kgwv1.Node{
			{Id: "a", Code: "x = 1", Retry: &kgwv1.RetryPolicy{MaxAttempts: 2}},
			{Id: "b", Code: "y = 1", Retry: &kgwv1.RetryPolicy{MaxAttempts: 2}},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kgw.ParseWorkflow([]byte(tt.data), tt.format, "")
			if err != nil {
				t.Fatalf("ParseWorkflow() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("ParseWorkflow() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseWorkflowErrors(t *testing.T) {
	tests := []struct {
		name, format, data string
		want               []string // "line:field:substring" of each problem, in order
	}{
		{"unknown top-level field", "yaml", "name: w\nversoin: 2\nnodes: [{id: a, code: x = 1}]\n",
			[]string{`2:versoin:unknown field "versoin"`}},
		{"unknown node field", "yaml", "name: w\nnodes:\n  - id: a\n    code: x = 1\n    requires: [db]\n",
			[]string{`5:nodes[0].requires:unknown field "requires" in a node`}},
		{"unknown field json", "json", "{\n  \"name\": \"w\",\n  \"nodes\": [{\"id\": \"a\", \"code\": \"x\"}],\n  \"extra\": 1\n}",
			[]string{`4:extra:unknown field "extra"`}},
		{"duplicate field", "json", "{\"name\": \"w\",\n\"name\": \"v\", \"nodes\": [{\"id\": \"a\", \"code\": \"x\"}]}",
			[]string{`2:name:given twice`}},
		{"wrong types", "yaml", "name: 3\ndisable_journal: yes\nlabels: [a]\nnodes:\n  - id: a\n    code: x = 1\n    required_resources: db\n",
			[]string{`1:name:must be a string`, `2:disable_journal:must be true or false`, `3:labels:must be a mapping`, `7:nodes[0].required_resources:must be a list`}},
		{"bad durations", "yaml", "name: w\ntimeout: soon\nnodes:\n  - id: a\n    code: x = 1\n    timeout: -5\n    retry: {initial_backoff: .inf}\n",
			[]string{`2:timeout:invalid duration "soon"`, `6:nodes[0].timeout:must not be negative`, `7:nodes[0].retry.initial_backoff:finite`}},
		{"bad retry", "yaml", "name: w\nnodes:\n  - id: a\n    code: x = 1\n    retry:\n      max_attempts: 1.5\n      multiplier: 0.5\n",
			[]string{`6:nodes[0].retry.max_attempts:whole number`, `7:nodes[0].retry.multiplier:at least 1`}},
		{"code and code_file", "yaml", "name: w\nnodes:\n  - id: a\n    code: x = 1\n    code_file: a.star\n",
			[]string{`5:nodes[0].code_file:not both`}},
		{"no code", "yaml", "name: w\nnodes:\n  - id: a\n", []string{`3:nodes[0]:needs code or code_file`}},
		{"mixed connection forms", "yaml", "name: w\nnodes: [{id: a, code: x = 1}, {id: b, code: y = 1}]\nconnections:\n  - {from: a.x, to_node: b}\n",
			[]string{`4:connections[0]:not both`}},
		{"connection without to", "yaml", "name: w\nnodes: [{id: a, code: x = 1}]\nconnections:\n  - from: a.x\n",
			[]string{`4:connections[0].to_node:required`}},
		{"structural problems get lines", "yaml", "name: Bad\nnodes:\n  - id: a\n    code: x = 1\n  - id: a\n    code: y = 1\nconnections:\n  - from: a.x\n    to: c\n",
			[]string{`1:name:not a valid workflow name`, `5:nodes[1].id:duplicate node id`, `9:connections[0].to_node:unknown node 'c'`}},
		{"not a mapping", "yaml", "- a\n- b\n", []string{`1::the workflow must be a mapping`}},
		{"yaml syntax", "yaml", "name: w\nnodes: [\n", []string{`2::YAML:`}},
		{"json syntax", "json", "{\"name\": \"w\",\n \"nodes\": [}", []string{`2::JSON:`}},
		{"json trailing data", "json", "{\"name\": \"w\"} {}", []string{`1::after the top-level object`}},
		{"two yaml documents", "yaml", "name: w\n---\nname: v\n", []string{`2::more than one YAML document`}},
		{"empty", "yaml", "", []string{`0::empty file`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wf, err := kgw.ParseWorkflow([]byte(tt.data), tt.format, t.TempDir())
			var fe *kgw.FileError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseWorkflow() = %v, %v; want a *FileError", wf, err)
			}
			if len(fe.Problems) != len(tt.want) {
				t.Fatalf("ParseWorkflow() problems:\n%v\nwant %d: %q", err, len(tt.want), tt.want)
			}
			for i, p := range fe.Problems {
				parts := strings.SplitN(tt.want[i], ":", 3)
				if got := strings.Join([]string{itoa(p.Line), p.Field}, ":"); got != parts[0]+":"+parts[1] || !strings.Contains(p.Message, parts[2]) {
					t.Errorf("problem %d = %d %q %q, want %q", i, p.Line, p.Field, p.Message, tt.want[i])
				}
			}
		})
	}
	if _, err := kgw.ParseWorkflow([]byte("name: w"), "toml", ""); err == nil {
		t.Errorf("ParseWorkflow(format toml) error = nil, want one")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestMarshalWorkflowRoundTrip(t *testing.T) {
	wf := helloWant()
	for _, format := range []string{"yaml", "json"} {
		data, err := kgw.MarshalWorkflow(wf, format)
		if err != nil {
			t.Fatalf("MarshalWorkflow(%s) error = %v", format, err)
		}
		got, err := kgw.ParseWorkflow(data, format, "")
		if err != nil {
			t.Fatalf("ParseWorkflow(MarshalWorkflow(%s)) error = %v\n%s", format, err, data)
		}
		if diff := cmp.Diff(wf, got, protocmp.Transform()); diff != "" {
			t.Errorf("%s round trip mismatch (-want +got):\n%s\n%s", format, diff, data)
		}
	}
}

// FuzzParseWorkflow checks that no input panics the parser, and that what
// it accepts survives MarshalWorkflow and ParseWorkflow unchanged.
func FuzzParseWorkflow(f *testing.F) {
	for _, name := range []string{"hello.yaml", "hello.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", "hello", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, strings.TrimPrefix(filepath.Ext(name), "."))
	}
	f.Add([]byte("name: w\nnodes: [{id: a, code: x = 1}, {id: b, code: y}]\nconnections: [{from: a.x, to: b.y}]\n"), "")
	f.Add([]byte(`{"name": "w", "nodes": [{"id": "a", "code": "x", "timeout": 1e3}], "labels": {"a": "b"}}`), "json")
	f.Add([]byte("name: &a w\nnodes: [{id: *a, code: *a}]\n"), "yaml")
	f.Add([]byte("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["), "json")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, format string) {
		wf, err := kgw.ParseWorkflow(data, format, dir)
		if err != nil {
			return
		}
		for _, out := range []string{"yaml", "json"} {
			text, err := kgw.MarshalWorkflow(wf, out)
			if err != nil {
				t.Fatalf("MarshalWorkflow(%s) error = %v", out, err)
			}
			again, err := kgw.ParseWorkflow(text, out, dir)
			if err != nil {
				t.Fatalf("ParseWorkflow(MarshalWorkflow(%s)) error = %v\n%s", out, err, text)
			}
			if !proto.Equal(wf, again) {
				t.Fatalf("%s round trip changed the workflow:\n%v\n%v", out, wf, again)
			}
		}
	})
}
