package kgw

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"gopkg.in/yaml.v3"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// Limits of workflow files.
const (
	maxFileBytes     = 8 << 20 // a definition file
	maxCodeFileBytes = 1 << 20 // a code_file (the gateway accepts 256 KiB of code per node)
	maxFileDepth     = 64      // nesting of JSON values
	maxFileProblems  = 50      // problems reported at once
)

// A FileError reports the problems of a workflow file, each with its line.
// LoadWorkflowFile and ParseWorkflow return it for every problem they find
// in the file's content; use errors.As to reach Problems.
type FileError struct {
	// Path is the file, when known.
	Path string
	// Problems lists what is wrong, in file order where possible.
	Problems []FileProblem
}

// A FileProblem is one problem in a workflow file.
type FileProblem struct {
	// Line and Column locate the problem (1-based); 0 when unknown.
	Line, Column int
	// Field is the path of the field, e.g. "nodes[1].timeout"; empty for
	// problems with the file as a whole.
	Field string
	// Message says what is wrong.
	Message string
}

// String formats p as "line:col: field: message".
func (p FileProblem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:%d: ", p.Line, p.Column)
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error lists the problems, one per line, as "path:line:col: field: message".
func (e *FileError) Error() string {
	prefix := e.Path
	if prefix == "" {
		prefix = "workflow file"
	}
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if p.Line > 0 {
			fmt.Fprintf(&b, "%s:%s", prefix, p.String())
		} else {
			fmt.Fprintf(&b, "%s: %s", prefix, p.String())
		}
	}
	return b.String()
}

// LoadWorkflowFile reads a workflow definition from a YAML (.yaml, .yml)
// or JSON (.json) file; other extensions are recognised by content.
// code_file paths in it are relative to the file's directory. The format is
// described in docs/workflow-files.md. Problems with the content are
// reported as a *FileError naming each field and line.
func LoadWorkflowFile(path string) (*Workflow, error) {
	wf, _, err := LoadWorkflowSource(path)
	return wf, err
}

// LoadWorkflowSource is LoadWorkflowFile that also says where each node's
// code is in the files (one CodeSource per node, in order), so that a
// problem found in the code can be shown at its line in the file.
func LoadWorkflowSource(path string) (*Workflow, []CodeSource, error) {
	data, err := readLimited(path, maxFileBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("kgw: load workflow: %w", err)
	}
	format := ""
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		format = "yaml"
	case ".json":
		format = "json"
	}
	wf, src, err := parseWorkflow(data, format, filepath.Dir(path), path)
	var fe *FileError
	if errors.As(err, &fe) {
		fe.Path = path
	}
	return wf, src, err
}

// A CodeSource says where the code of one node comes from, to place a
// problem found at line:col of the code in the file a person edits.
type CodeSource struct {
	// File holds the code: the workflow file ("" when parsed from bytes)
	// or the node's code_file.
	File string
	// Line and Column are where the code starts in File (1-based).
	Line, Column int
	// Block is true when line n of the code is line Line+n-1 of File,
	// indented by Column-1: a code_file, or a YAML literal block (|).
	// Otherwise the code is one string scalar (quoted, or JSON) and every
	// position of the code maps to Line:Column.
	Block bool
}

// Position returns the position in s.File of line:col of the code.
func (s CodeSource) Position(line, col int) (fileLine, fileCol int) {
	if !s.Block || line < 1 {
		return s.Line, s.Column
	}
	return s.Line + line - 1, s.Column + col - 1
}

// readLimited reads a regular file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// ParseWorkflow parses a workflow definition. format is "yaml" (or "yml"),
// "json", or "" to recognise it by content (JSON starts with '{'). code_file
// paths are relative to baseDir ("" means the working directory). Besides
// the file's syntax and fields, it makes the structural checks of
// WorkflowBuilder.Build; problems are reported as a *FileError.
func ParseWorkflow(data []byte, format, baseDir string) (*Workflow, error) {
	wf, _, err := parseWorkflow(data, format, baseDir, "")
	return wf, err
}

// ParseWorkflowSource is ParseWorkflow that also returns where each node's
// code is (see LoadWorkflowSource); file names the data in the CodeSources.
func ParseWorkflowSource(data []byte, format, baseDir, file string) (*Workflow, []CodeSource, error) {
	return parseWorkflow(data, format, baseDir, file)
}

func parseWorkflow(data []byte, format, baseDir, file string) (*Workflow, []CodeSource, error) {
	if len(data) > maxFileBytes {
		return nil, nil, &FileError{Problems: []FileProblem{{Message: fmt.Sprintf("larger than %d bytes", maxFileBytes)}}}
	}
	format = strings.ToLower(format)
	if format == "" {
		format = "yaml"
		if t := bytes.TrimLeft(data, " \t\r\n\ufeff"); len(t) > 0 && t[0] == '{' {
			format = "json"
		}
	}
	var root *yaml.Node
	var err error
	switch format {
	case "yaml", "yml":
		root, err = yamlTree(data)
	case "json":
		root, err = jsonTree(data)
	default:
		return nil, nil, fmt.Errorf("kgw: parse workflow: unknown format %q (want yaml or json)", format)
	}
	if err != nil {
		var fe *FileError
		if errors.As(err, &fe) {
			return nil, nil, fe
		}
		return nil, nil, &FileError{Problems: []FileProblem{{Message: err.Error()}}}
	}
	d := &fileDecoder{baseDir: baseDir, pos: map[string]*yaml.Node{}, data: data, file: file, sources: map[string]CodeSource{}}
	wf := d.workflow(root)
	if len(d.problems) == 0 {
		for _, v := range checkWorkflow(wf) {
			field := strings.TrimPrefix(strings.TrimPrefix(v.Field, "workflow"), ".")
			d.problemAt(d.nearest(field), field, "%s", v.Description)
		}
	}
	if len(d.problems) > 0 {
		sort.SliceStable(d.problems, func(i, j int) bool {
			a, b := d.problems[i], d.problems[j]
			return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
		})
		if len(d.problems) > maxFileProblems {
			n := len(d.problems) - maxFileProblems
			d.problems = append(d.problems[:maxFileProblems], FileProblem{Message: fmt.Sprintf("and %d more problems", n)})
		}
		return nil, nil, &FileError{Problems: d.problems}
	}
	sources := make([]CodeSource, len(wf.GetNodes()))
	for i := range sources {
		sources[i] = d.sources[fmt.Sprintf("nodes[%d]", i)]
	}
	return wf, sources, nil
}

// yamlTree parses one YAML document.
func yamlTree(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file")
		}
		return nil, yamlError(err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(err)
		}
		return nil, &FileError{Problems: []FileProblem{{Line: next.Line, Column: next.Column, Message: "more than one YAML document"}}}
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0], nil
	}
	return &doc, nil
}

// yamlError turns a yaml.v3 error ("yaml: line 3: …") into a problem.
func yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
		if i := strings.Index(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
	}
	return &FileError{Problems: []FileProblem{{Line: line, Message: "YAML: " + msg}}}
}

// jsonTree parses JSON into the same tree yaml.v3 produces, with positions,
// so that both formats share one decoder and one set of messages.
func jsonTree(data []byte) (*yaml.Node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	r := &jsonTreeReader{data: data, dec: dec}
	root, err := r.value(0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		l, c := r.pos(dec.InputOffset())
		return nil, &FileError{Problems: []FileProblem{{Line: l, Column: c, Message: "JSON: data after the top-level object"}}}
	}
	return root, nil
}

// jsonTreeReader reads the tokens of data into yaml.Nodes for jsonTree.
type jsonTreeReader struct {
	data []byte
	dec  *json.Decoder
}

// pos is the line and column of the token at byte offset off (separators
// skipped), both from 1.
func (r *jsonTreeReader) pos(off int64) (line, col int) {
	for off < int64(len(r.data)) && strings.IndexByte(" \t\r\n,:", r.data[off]) >= 0 {
		off++
	}
	line = 1 + bytes.Count(r.data[:off], []byte{'\n'})
	col = int(off) - bytes.LastIndexByte(r.data[:off], '\n')
	return line, col
}

// syntax turns a decoder error into a problem at its position.
func (r *jsonTreeReader) syntax(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		l, c := r.pos(se.Offset)
		return &FileError{Problems: []FileProblem{{Line: l, Column: c, Message: "JSON: " + se.Error()}}}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("JSON: unexpected end of file")
	}
	return fmt.Errorf("JSON: %w", err)
}

// value reads the next value, depth levels deep, into a node: a scalar, or
// a mapping or sequence read to its closing delimiter.
func (r *jsonTreeReader) value(depth int) (*yaml.Node, error) {
	l, c := r.pos(r.dec.InputOffset())
	tok, err := r.dec.Token()
	if err != nil {
		return nil, r.syntax(err)
	}
	n := &yaml.Node{Line: l, Column: c}
	if depth > maxFileDepth {
		return nil, &FileError{Problems: []FileProblem{{Line: l, Column: c, Message: "JSON nested too deeply"}}}
	}
	switch t := tok.(type) {
	case json.Delim:
		if err := r.container(n, t, depth); err != nil {
			return nil, err
		}
	case string:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!str", t
	case json.Number:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!int", t.String()
		if strings.ContainsAny(t.String(), ".eE") {
			n.Tag = "!!float"
		}
	case bool:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!bool", fmt.Sprint(t)
	case nil:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!null", "null"
	}
	return n, nil
}

// container reads the members of the object or array opened by delim
// into n, then its closing delimiter.
func (r *jsonTreeReader) container(n *yaml.Node, delim json.Delim, depth int) error {
	switch delim {
	case '{':
		n.Kind, n.Tag = yaml.MappingNode, "!!map"
		for r.dec.More() {
			kl, kc := r.pos(r.dec.InputOffset())
			kt, err := r.dec.Token()
			if err != nil {
				return r.syntax(err)
			}
			key, _ := kt.(string) // the decoder only yields string keys
			v, err := r.value(depth + 1)
			if err != nil {
				return err
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: kl, Column: kc}, v)
		}
	case '[':
		n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
		for r.dec.More() {
			v, err := r.value(depth + 1)
			if err != nil {
				return err
			}
			n.Content = append(n.Content, v)
		}
	}
	if _, err := r.dec.Token(); err != nil { // the closing delimiter
		return r.syntax(err)
	}
	return nil
}

// fileDecoder turns the tree of a workflow file into a Workflow, collecting
// problems instead of stopping at the first.
type fileDecoder struct {
	baseDir  string
	problems []FileProblem
	// pos maps field paths ("nodes[0].id") to their nodes, to place the
	// problems found by checkWorkflow.
	pos map[string]*yaml.Node
	// data and file are the text being decoded and its name; sources
	// records where each node's code is ("nodes[0]" -> source).
	data    []byte
	file    string
	sources map[string]CodeSource
}

// inlineSource returns where the code in scalar v starts.
func (d *fileDecoder) inlineSource(v *yaml.Node) CodeSource {
	if v.Style&yaml.LiteralStyle == 0 {
		return CodeSource{File: d.file, Line: v.Line, Column: v.Column}
	}
	// A literal block: its text starts on the line after the indicator,
	// at the indentation of its first non-empty line.
	lines := bytes.Split(d.data, []byte("\n"))
	for i := v.Line; i < len(lines); i++ {
		l := bytes.TrimRight(lines[i], "\r")
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		indent := len(l) - len(bytes.TrimLeft(l, " "))
		return CodeSource{File: d.file, Line: v.Line + 1, Column: indent + 1, Block: true}
	}
	return CodeSource{File: d.file, Line: v.Line, Column: v.Column}
}

func (d *fileDecoder) problemAt(n *yaml.Node, field, format string, args ...any) {
	p := FileProblem{Field: field, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	d.problems = append(d.problems, p)
}

// nearest returns the node of field or of its closest recorded parent.
func (d *fileDecoder) nearest(field string) *yaml.Node {
	for {
		if n, ok := d.pos[field]; ok {
			return n
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			return d.pos[""]
		}
		field = field[:i]
	}
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// fields decodes a mapping: each key must be one of handlers; duplicate and
// unknown keys are problems.
func (d *fileDecoder) fields(n *yaml.Node, path, what string, handlers map[string]func(v *yaml.Node, field string)) bool {
	n = resolve(n)
	d.pos[path] = n
	if n == nil || n.Kind != yaml.MappingNode {
		d.problemAt(n, path, "%s must be a mapping of fields, got %s", what, kindName(n))
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			d.problemAt(k, path, "field names must be strings")
			continue
		}
		field := k.Value
		if path != "" {
			field = path + "." + k.Value
		}
		h, ok := handlers[k.Value]
		switch {
		case !ok:
			known := make([]string, 0, len(handlers))
			for name := range handlers {
				known = append(known, name)
			}
			sort.Strings(known)
			d.problemAt(k, field, "unknown field %q in %s (known fields: %s)", k.Value, what, strings.Join(known, ", "))
		case seen[k.Value]:
			d.problemAt(k, field, "field %q given twice", k.Value)
		default:
			seen[k.Value] = true
			d.pos[field] = resolve(v)
			h(resolve(v), field)
		}
	}
	return true
}

func kindName(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("the string %q", clipString(n.Value))
		case "!!null":
			return "null"
		default:
			return clipString(n.Value)
		}
	}
	return "an unsupported value"
}

func clipString(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

func (d *fileDecoder) str(n *yaml.Node, field string) string {
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.problemAt(n, field, "must be a string, got %s", kindName(n))
		return ""
	}
	return n.Value
}

func (d *fileDecoder) boolean(n *yaml.Node, field string) bool {
	var b bool
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.problemAt(n, field, "must be true or false, got %s", kindName(n))
	}
	return b
}

func (d *fileDecoder) number(n *yaml.Node, field string) (float64, bool) {
	var f float64
	if n == nil || n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&f) != nil {
		d.problemAt(n, field, "must be a number, got %s", kindName(n))
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		d.problemAt(n, field, "must be a finite number, got %s", n.Value)
		return 0, false
	}
	return f, true
}

// duration reads "30s"-style strings or numbers of seconds. Zero gives nil
// (the gateway's default); negative values are problems.
func (d *fileDecoder) duration(n *yaml.Node, field string) *durationpb.Duration {
	var dur time.Duration
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		var err error
		if dur, err = time.ParseDuration(strings.TrimSpace(n.Value)); err != nil {
			d.problemAt(n, field, "invalid duration %q: want e.g. \"30s\", \"1m30s\", \"500ms\" or a number of seconds", clipString(n.Value))
			return nil
		}
	} else {
		secs, ok := d.number(n, field)
		if !ok {
			return nil
		}
		if math.Abs(secs) > float64(math.MaxInt64)/float64(time.Second) {
			d.problemAt(n, field, "duration %v s is too long", secs)
			return nil
		}
		dur = time.Duration(math.Round(secs * float64(time.Second)))
	}
	if dur < 0 {
		d.problemAt(n, field, "must not be negative, got %v", dur)
		return nil
	}
	if dur == 0 {
		return nil
	}
	return durationpb.New(dur)
}

func (d *fileDecoder) strings(n *yaml.Node, field string) []string {
	if n == nil || n.Kind != yaml.SequenceNode {
		d.problemAt(n, field, "must be a list of strings, got %s", kindName(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, it := range n.Content {
		out = append(out, d.str(resolve(it), fmt.Sprintf("%s[%d]", field, i)))
	}
	return out
}

func (d *fileDecoder) list(n *yaml.Node, field string, each func(it *yaml.Node, field string)) {
	if n == nil || n.Kind != yaml.SequenceNode {
		d.problemAt(n, field, "must be a list, got %s", kindName(n))
		return
	}
	for i, it := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		d.pos[f] = resolve(it)
		each(resolve(it), f)
	}
}

func (d *fileDecoder) workflow(root *yaml.Node) *kgwv1.Workflow {
	wf := &kgwv1.Workflow{}
	d.fields(root, "", "the workflow", map[string]func(*yaml.Node, string){
		"name":            func(v *yaml.Node, f string) { wf.Name = d.str(v, f) },
		"description":     func(v *yaml.Node, f string) { wf.Description = d.str(v, f) },
		"timeout":         func(v *yaml.Node, f string) { wf.Timeout = d.duration(v, f) },
		"disable_journal": func(v *yaml.Node, f string) { wf.DisableJournal = d.boolean(v, f) },
		"labels": func(v *yaml.Node, f string) {
			wf.Labels = map[string]string{}
			d.labels(v, f, wf.Labels)
		},
		"nodes": func(v *yaml.Node, f string) {
			d.list(v, f, func(it *yaml.Node, f string) { wf.Nodes = append(wf.Nodes, d.node(it, f)) })
		},
		"connections": func(v *yaml.Node, f string) {
			d.list(v, f, func(it *yaml.Node, f string) { wf.Connections = append(wf.Connections, d.connection(it, f)) })
		},
	})
	return wf
}

// labels reads a mapping of strings; scalar values of other types (numbers,
// booleans) are taken as written, since labels are text.
func (d *fileDecoder) labels(n *yaml.Node, field string, out map[string]string) {
	if n == nil || n.Kind != yaml.MappingNode {
		d.problemAt(n, field, "must be a mapping of strings, got %s", kindName(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k == nil || k.Kind != yaml.ScalarNode {
			d.problemAt(k, field, "label names must be strings")
			continue
		}
		f := field + "." + k.Value
		if _, dup := out[k.Value]; dup {
			d.problemAt(k, f, "label %q given twice", k.Value)
			continue
		}
		if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
			d.problemAt(v, f, "must be a string, got %s", kindName(v))
			continue
		}
		out[k.Value] = v.Value
	}
}

func (d *fileDecoder) node(n *yaml.Node, path string) *kgwv1.Node {
	node := &kgwv1.Node{}
	var codeFile *yaml.Node
	hasCode := false
	ok := d.fields(n, path, "a node", map[string]func(*yaml.Node, string){
		"id": func(v *yaml.Node, f string) { node.Id = d.str(v, f) },
		"code": func(v *yaml.Node, f string) {
			node.Code, hasCode = d.str(v, f), true
			d.sources[path] = d.inlineSource(v)
		},
		"code_file":   func(v *yaml.Node, _ string) { codeFile = v },
		"description": func(v *yaml.Node, f string) { node.Description = d.str(v, f) },
		"timeout":     func(v *yaml.Node, f string) { node.Timeout = d.duration(v, f) },
		"required_resources": func(v *yaml.Node, f string) {
			node.RequiredResources = d.strings(v, f)
		},
		"retry": func(v *yaml.Node, f string) { node.Retry = d.retry(v, f) },
	})
	if !ok {
		return node
	}
	switch {
	case hasCode && codeFile != nil:
		d.problemAt(codeFile, path+".code_file", "give either code or code_file, not both")
	case codeFile != nil:
		name := d.str(codeFile, path+".code_file")
		if name == "" {
			if codeFile.ShortTag() == "!!str" {
				d.problemAt(codeFile, path+".code_file", "empty path")
			}
			break
		}
		p := name
		if !filepath.IsAbs(p) && d.baseDir != "" {
			p = filepath.Join(d.baseDir, p)
		}
		data, err := readLimited(p, maxCodeFileBytes)
		if err != nil {
			d.problemAt(codeFile, path+".code_file", "%v", err)
			break
		}
		node.Code = string(data)
		d.pos[path+".code"] = codeFile
		d.sources[path] = CodeSource{File: p, Line: 1, Column: 1, Block: true}
	case !hasCode:
		d.problemAt(n, path, "node '%s' needs code or code_file", node.Id)
	}
	return node
}

func (d *fileDecoder) retry(n *yaml.Node, path string) *kgwv1.RetryPolicy {
	r := &kgwv1.RetryPolicy{}
	d.fields(n, path, "retry", map[string]func(*yaml.Node, string){
		"max_attempts": func(v *yaml.Node, f string) {
			x, ok := d.number(v, f)
			switch {
			case !ok:
			case x != math.Trunc(x) || x < 1 || x > math.MaxInt32:
				d.problemAt(v, f, "must be a whole number >= 1, got %s", v.Value)
			default:
				r.MaxAttempts = int32(x)
			}
		},
		"initial_backoff": func(v *yaml.Node, f string) { r.InitialBackoff = d.duration(v, f) },
		"max_backoff":     func(v *yaml.Node, f string) { r.MaxBackoff = d.duration(v, f) },
		"multiplier": func(v *yaml.Node, f string) {
			x, ok := d.number(v, f)
			if ok && x != 0 && x < 1 {
				d.problemAt(v, f, "must be 0 (the default, 2) or at least 1, got %s", v.Value)
				return
			}
			r.Multiplier = x
		},
	})
	return r
}

// connection reads the long form (from_node, from_output, to_node,
// to_input) or the compact form (from: "node.output", to: "node.input").
func (d *fileDecoder) connection(n *yaml.Node, path string) *kgwv1.Connection {
	c := &kgwv1.Connection{}
	var long, compact *yaml.Node
	setLong := func(dst *string) func(*yaml.Node, string) {
		return func(v *yaml.Node, f string) {
			if long == nil {
				long = v
			}
			*dst = d.str(v, f)
		}
	}
	setCompact := func(node, port *string, nodeField, portField string) func(*yaml.Node, string) {
		return func(v *yaml.Node, f string) {
			if compact == nil {
				compact = v
			}
			s := d.str(v, f)
			*node, *port, _ = strings.Cut(s, ".")
			d.pos[path+"."+nodeField], d.pos[path+"."+portField] = v, v
		}
	}
	ok := d.fields(n, path, "a connection", map[string]func(*yaml.Node, string){
		"from_node":   setLong(&c.FromNode),
		"from_output": setLong(&c.FromOutput),
		"to_node":     setLong(&c.ToNode),
		"to_input":    setLong(&c.ToInput),
		"from":        setCompact(&c.FromNode, &c.FromOutput, "from_node", "from_output"),
		"to":          setCompact(&c.ToNode, &c.ToInput, "to_node", "to_input"),
	})
	if !ok {
		return c
	}
	if long != nil && compact != nil {
		d.problemAt(compact, path, "use either from/to or from_node/from_output/to_node/to_input, not both")
		return c
	}
	if c.FromNode == "" {
		d.problemAt(n, path+".from_node", "required")
	}
	if c.ToNode == "" {
		d.problemAt(n, path+".to_node", "required")
	}
	return c
}
